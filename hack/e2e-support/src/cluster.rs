//! One fixture, two control planes: a scenario written against [`Cluster`]
//! runs on `kube-testserver` (fast, in-process) or on the real Kubernetes
//! control plane of `hack/cluster.sh` (etcd, kube-apiserver with RBAC and
//! the default admission plugins, kube-controller-manager's PV binder and
//! protection controllers, kube-scheduler), chosen by `E2E_CLUSTER`.
//!
//! The real backend is the judge: the provisioner installs from its real
//! `deploy/<x>` manifests, runs as a local process authenticated as their
//! ServiceAccount, and every 403 the real RBAC authorizer gave it (read from
//! the apiserver's audit log) fails the test. On the test server, the same
//! check compares the recorded calls with the manifests' rules.

use std::path::{Path, PathBuf};
use std::process::Command;

use kube::Client;
use serde::Deserialize;
use serde_json::json;

use crate::{create, deploy_dir, TestServer, PROVISIONER_USER};

/// The environment variable that picks the backend: `real` or `testserver`
/// (the default).
pub const BACKEND_VAR: &str = "E2E_CLUSTER";

/// Which control plane a [`Cluster`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `kube-testserver`, in this process.
    TestServer,
    /// etcd + kube-apiserver + kube-controller-manager + kube-scheduler,
    /// started by `hack/cluster.sh up`.
    Real,
}

impl Backend {
    /// The backend `E2E_CLUSTER` names; panics on an unknown value (a typo
    /// must not silently run the simulator instead of the real thing).
    pub fn from_env() -> Backend {
        match std::env::var(BACKEND_VAR).as_deref() {
            Err(_) | Ok("") | Ok("testserver") => Backend::TestServer,
            Ok("real") => Backend::Real,
            Ok(other) => panic!("{BACKEND_VAR}={other:?}: expected \"real\" or \"testserver\""),
        }
    }

    /// `"real"` or `"testserver"`, as test output prints it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::TestServer => "testserver",
            Backend::Real => "real",
        }
    }
}

enum Inner {
    TestServer(Box<TestServer>),
    Real { dir: PathBuf },
}

/// A running control plane for one test; the real one is stopped on drop.
pub struct Cluster {
    inner: Inner,
    client: Client,
    admin_kubeconfig: PathBuf,
    _work: tempfile::TempDir,
}

/// A provisioner installed with `kubectl apply -f deploy/<name>`.
#[derive(Debug, Clone)]
pub struct Installed {
    /// `deploy/<name>`.
    pub deploy: PathBuf,
    /// The namespace of its ServiceAccount.
    pub namespace: String,
    /// Its ServiceAccount.
    pub service_account: String,
    /// A kubeconfig that authenticates as that ServiceAccount (real), or as
    /// [`PROVISIONER_USER`] whose calls the test server records.
    pub kubeconfig: PathBuf,
}

/// `hack/cluster.sh` of this repository (found like [`deploy_dir`]).
pub fn cluster_script() -> PathBuf {
    deploy_dir("hostpath")
        .parent()
        .and_then(Path::parent)
        .expect("deploy/ has a parent")
        .join("hack/cluster.sh")
}

/// Runs `hack/cluster.sh ARGS`, panicking with its output on failure;
/// returns its stdout.
pub fn cluster_sh(args: &[&str]) -> String {
    crate::run_ok(Command::new("bash").arg(cluster_script()).args(args))
}

/// Runs `kubectl ARGS` with `kubeconfig`, panicking with its output on failure.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    crate::run_ok(
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args),
    )
}

impl Cluster {
    /// Starts the backend `E2E_CLUSTER` names and says which on stderr.
    pub async fn start() -> Cluster {
        Cluster::start_backend(Backend::from_env()).await
    }

    /// Starts `backend`.
    pub async fn start_backend(backend: Backend) -> Cluster {
        let work = tempfile::tempdir().expect("temp dir");
        eprintln!("e2e backend: {}", backend.name());
        match backend {
            Backend::TestServer => {
                let ts = TestServer::start().await.expect("start kube-testserver");
                let client = ts.client().await;
                let admin_kubeconfig = ts.kubeconfig_path().to_path_buf();
                Cluster {
                    inner: Inner::TestServer(Box::new(ts)),
                    client,
                    admin_kubeconfig,
                    _work: work,
                }
            }
            Backend::Real => {
                let dir = work.path().join("cluster");
                let dir_arg = dir.to_str().expect("UTF-8 temp dir").to_string();
                tokio::task::spawn_blocking(move || cluster_sh(&["up", &dir_arg]))
                    .await
                    .expect("cluster.sh up");
                let admin_kubeconfig = dir.join("kubeconfig");
                let config = kube::Config::from_custom_kubeconfig(
                    kube::config::Kubeconfig::read_from(&admin_kubeconfig)
                        .expect("read kubeconfig"),
                    &Default::default(),
                )
                .await
                .expect("admin kubeconfig");
                let client = Client::try_from(config).expect("client for the real cluster");
                Cluster {
                    inner: Inner::Real { dir },
                    client,
                    admin_kubeconfig,
                    _work: work,
                }
            }
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::TestServer(_) => Backend::TestServer,
            Inner::Real { .. } => Backend::Real,
        }
    }

    /// Whether this is the real control plane.
    pub fn is_real(&self) -> bool {
        self.backend() == Backend::Real
    }

    /// A cluster-admin client.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A cluster-admin kubeconfig (for `kubectl`).
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// The test server, when that is the backend (fault injection, stats).
    pub fn testserver(&self) -> Option<&TestServer> {
        match &self.inner {
            Inner::TestServer(ts) => Some(ts),
            Inner::Real { .. } => None,
        }
    }

    /// The real cluster's directory (logs, pids, audit log), when real.
    pub fn real_dir(&self) -> Option<&Path> {
        match &self.inner {
            Inner::Real { dir } => Some(dir),
            Inner::TestServer(_) => None,
        }
    }

    /// `kubectl apply -f deploy/<name>` as cluster admin, as an operator
    /// installs it, and a kubeconfig for the provisioner binary: its
    /// ServiceAccount's token on the real cluster (TokenRequest, through
    /// `hack/cluster.sh token`), [`PROVISIONER_USER`] on the test server.
    pub fn install(&self, name: &str) -> Installed {
        let deploy = deploy_dir(name);
        kubectl(
            &self.admin_kubeconfig,
            &["apply", "-f", deploy.to_str().expect("UTF-8 path")],
        );
        let (namespace, service_account) = service_account_of(&deploy);
        let kubeconfig = match &self.inner {
            Inner::TestServer(ts) => ts
                .kubeconfig_as(PROVISIONER_USER)
                .expect("kubeconfig for the provisioner user"),
            Inner::Real { dir } => {
                let text = cluster_sh(&[
                    "token",
                    dir.to_str().expect("UTF-8 path"),
                    &namespace,
                    &service_account,
                ]);
                let file = dir.join(format!("kubeconfig-{service_account}"));
                std::fs::write(&file, text).expect("write ServiceAccount kubeconfig");
                wait_rbac_in_force(
                    &self.admin_kubeconfig,
                    &deploy,
                    &namespace,
                    &service_account,
                );
                file
            }
        };
        Installed {
            deploy,
            namespace,
            service_account,
            kubeconfig,
        }
    }

    /// A Ready, schedulable Node `name` labelled
    /// `kubernetes.io/hostname=<hostname>` (real: `hack/cluster.sh node`).
    pub async fn node(&self, name: &str, hostname: &str) {
        match &self.inner {
            Inner::TestServer(_) => {
                let _: k8s_openapi::api::core::v1::Node = create(
                    &kube::Api::all(self.client.clone()),
                    json!({
                        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": hostname}},
                        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
                    }),
                )
                .await;
            }
            Inner::Real { dir } => {
                let args = [
                    "node".to_string(),
                    dir.display().to_string(),
                    name.to_string(),
                    hostname.to_string(),
                ];
                tokio::task::spawn_blocking(move || {
                    cluster_sh(&args.iter().map(String::as_str).collect::<Vec<_>>())
                })
                .await
                .expect("cluster.sh node");
            }
        }
    }

    /// Makes every resourceVersion seen so far too old to watch from (410
    /// Expired): the test server forgets its history; the real cluster
    /// restarts kube-apiserver (`hack/cluster.sh restart`), whose new watch
    /// cache starts at the current revision. Open watches are cut (real).
    pub async fn expire_history(&self) {
        match &self.inner {
            Inner::TestServer(ts) => ts.store().compact(),
            Inner::Real { dir } => {
                let dir = dir.display().to_string();
                tokio::task::spawn_blocking(move || cluster_sh(&["restart", &dir]))
                    .await
                    .expect("cluster.sh restart");
            }
        }
    }

    /// Panics unless the provisioner's calls were all allowed by the RBAC
    /// of its manifests: on the real cluster, no request of its
    /// ServiceAccount was answered 403 (the audit log); on the test server,
    /// every recorded call matches a rule ([`crate::assert_rbac_allows`]).
    pub fn assert_rbac(&self, installed: &Installed) {
        match &self.inner {
            Inner::TestServer(ts) => {
                crate::assert_rbac_allows(ts, PROVISIONER_USER, &installed.deploy)
            }
            Inner::Real { dir } => {
                let user = format!(
                    "system:serviceaccount:{}:{}",
                    installed.namespace, installed.service_account
                );
                let (calls, denied) = audit_verdicts(&dir.join("audit.log"), &user);
                assert!(calls > 0, "no API calls by {user} in the audit log");
                assert!(
                    denied.is_empty(),
                    "the real RBAC authorizer denied {user} ({} of {calls} calls; deploy/ must allow them):\n  {}",
                    denied.len(),
                    denied.join("\n  ")
                );
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Inner::Real { dir } = &self.inner {
            let _ = Command::new("bash")
                .arg(cluster_script())
                .arg("down")
                .arg(dir)
                .output();
        }
    }
}

/// Waits (up to 30 s) until the RBAC authorizer applies the bindings just
/// created: it reads them from an informer, so for a moment after `kubectl
/// apply` the ServiceAccount may still be refused, and a provisioner started
/// then would see 403s the manifests do not deserve. Asks `kubectl auth
/// can-i --as` for the first rule of every Role and ClusterRole in `deploy`.
fn wait_rbac_in_force(admin: &Path, deploy: &Path, namespace: &str, service_account: &str) {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Rule {
        #[serde(default)]
        api_groups: Vec<String>,
        #[serde(default)]
        resources: Vec<String>,
        #[serde(default)]
        verbs: Vec<String>,
        #[serde(default)]
        resource_names: Vec<String>,
    }
    #[derive(Deserialize)]
    struct Meta {
        namespace: Option<String>,
    }
    #[derive(Deserialize)]
    struct Doc {
        kind: Option<String>,
        metadata: Option<Meta>,
        #[serde(default)]
        rules: Vec<Rule>,
    }
    let user = format!("system:serviceaccount:{namespace}:{service_account}");
    for text in manifest_texts(deploy) {
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let Ok(doc) = Doc::deserialize(doc) else {
                continue;
            };
            if !matches!(doc.kind.as_deref(), Some("Role" | "ClusterRole")) {
                continue;
            }
            let Some(rule) = doc.rules.first() else {
                continue;
            };
            let (Some(verb), Some(resource)) = (rule.verbs.first(), rule.resources.first()) else {
                continue;
            };
            let group = rule.api_groups.first().map(String::as_str).unwrap_or("");
            let mut what = if group.is_empty() {
                resource.clone()
            } else {
                format!("{resource}.{group}")
            };
            // A rule limited to named objects allows only those.
            if let Some(name) = rule.resource_names.first() {
                what = format!("{what}/{name}");
            }
            let mut args = vec!["auth", "can-i", verb.as_str(), what.as_str(), "--as", &user];
            let ns = doc.metadata.and_then(|m| m.namespace);
            if let Some(ns) = ns.as_deref() {
                args.extend(["-n", ns]);
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let out = Command::new("kubectl")
                    .arg("--kubeconfig")
                    .arg(admin)
                    .args(&args)
                    .output()
                    .expect("run kubectl auth can-i");
                if String::from_utf8_lossy(&out.stdout).trim() == "yes" {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "RBAC of {} not in force after 30 s: kubectl {}",
                    deploy.display(),
                    args.join(" ")
                );
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

/// The texts of the `*.yaml` files directly in `deploy`, sorted by name.
fn manifest_texts(deploy: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy)
        .unwrap_or_else(|e| panic!("read {}: {e}", deploy.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("read manifest"))
        .collect()
}

/// The (namespace, name) of the one ServiceAccount in `deploy`'s manifests.
fn service_account_of(deploy: &Path) -> (String, String) {
    #[derive(Deserialize)]
    struct Meta {
        name: String,
        namespace: Option<String>,
    }
    #[derive(Deserialize)]
    struct Doc {
        kind: Option<String>,
        metadata: Option<Meta>,
    }
    for text in manifest_texts(deploy) {
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let Ok(doc) = Doc::deserialize(doc) else {
                continue;
            };
            if let (Some("ServiceAccount"), Some(meta)) = (doc.kind.as_deref(), doc.metadata) {
                return (
                    meta.namespace.unwrap_or_else(|| "default".into()),
                    meta.name,
                );
            }
        }
    }
    panic!("no ServiceAccount in {}", deploy.display())
}

/// How many requests `user` made according to the audit log at `path`,
/// and each one answered 403, as `verb resource[/subresource] [ns/name]`.
pub fn audit_verdicts(path: &Path, user: &str) -> (usize, Vec<String>) {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ObjectRef {
        resource: Option<String>,
        subresource: Option<String>,
        namespace: Option<String>,
        name: Option<String>,
    }
    #[derive(Deserialize)]
    struct User {
        username: Option<String>,
    }
    #[derive(Deserialize)]
    struct Status {
        code: Option<u16>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Entry {
        user: User,
        verb: String,
        object_ref: Option<ObjectRef>,
        response_status: Option<Status>,
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut calls = 0;
    let mut denied = Vec::new();
    for line in text.lines() {
        let Ok(e) = serde_json::from_str::<Entry>(line) else {
            continue;
        };
        if e.user.username.as_deref() != Some(user) {
            continue;
        }
        calls += 1;
        if e.response_status.and_then(|s| s.code) == Some(403) {
            let what = e
                .object_ref
                .map(|o| {
                    let sub = o.subresource.map(|s| format!("/{s}")).unwrap_or_default();
                    format!(
                        "{}{sub} {}/{}",
                        o.resource.unwrap_or_default(),
                        o.namespace.unwrap_or_default(),
                        o.name.unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            denied.push(format!("{} {what}", e.verb));
        }
    }
    (calls, denied)
}
