//! The control plane a chaos run stands on, whichever it is: kube-testserver
//! in this process (fault injection, request counters, its store read
//! directly) or the real one of `hack/cluster.sh` (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler), read only through its API and
//! counted from its audit log. The checks ([`World`], [`Observer`],
//! [`Auditor`]) are the same on both; only where their input comes from
//! differs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube_testserver::{Config, Faults, TestServer};
use serde_json::Value;

use super::invariants::World;
use super::observer::Observer;
use crate::backend::Auditor;

/// Which control plane a run uses.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// kube-testserver, in-process, with fault injection.
    Testserver,
    /// The real control plane of `hack/cluster.sh` (no fault injection
    /// but provisioner kills and a kube-apiserver restart).
    Real,
}

/// A running control plane.
pub enum ControlPlane {
    /// kube-testserver.
    TestServer {
        /// The server.
        ts: Box<TestServer>,
        /// A client of it.
        admin: Client,
    },
    /// `hack/cluster.sh up DIR`; `hack/cluster.sh down DIR` on drop.
    Real(Real),
}

/// The real control plane's handle.
pub struct Real {
    dir: PathBuf,
    /// Kept (not removed) when the run fails, for its logs.
    work: Option<tempfile::TempDir>,
    admin: Client,
    /// When each `hack/cluster.sh restart` ran (from before it stopped the
    /// apiserver until the new one answered /readyz).
    restarts: Vec<(Timestamp, Timestamp)>,
}

/// API requests of a run.
#[derive(Debug, Clone, Default)]
pub struct Requests {
    /// Every request.
    pub total: u64,
    /// create, update, patch, delete, deletecollection.
    pub writes: u64,
    /// Real cluster: requests per client (ServiceAccount, or the admin
    /// user's client program by its user agent), with their writes.
    pub by_client: BTreeMap<String, (u64, u64)>,
    /// Real cluster: requests of `user` the RBAC authorizer answered 403.
    pub denied: Vec<String>,
    /// Real cluster: the 403s to `user` answered while a restarted
    /// kube-apiserver was starting (before /readyz): its RBAC authorizer
    /// serves before its informers have the cluster's bindings, so they
    /// say nothing about the manifests.
    pub denied_starting: Vec<String>,
}

/// Runs `hack/cluster.sh ARGS`; its stdout, or an error with its output.
fn cluster_sh(args: &[&str]) -> anyhow::Result<String> {
    cluster_sh_env(args, &[])
}

/// [`cluster_sh`] with extra environment variables (e.g.
/// `KCM_KUBE_API_QPS` for `up`).
fn cluster_sh_env(args: &[&str], env: &[(String, String)]) -> anyhow::Result<String> {
    let script = e2e_support::cluster::cluster_script();
    let out = Command::new("bash")
        .arg(&script)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "hack/cluster.sh {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// [`cluster_sh`] off the async runtime's threads.
async fn cluster_sh_async(args: Vec<String>) -> anyhow::Result<String> {
    cluster_sh_async_env(args, Vec::new()).await
}

/// [`cluster_sh_env`] off the async runtime's threads.
async fn cluster_sh_async_env(
    args: Vec<String>,
    env: Vec<(String, String)>,
) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        cluster_sh_env(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env)
    })
    .await
    .context("hack/cluster.sh task")?
}

/// `kubectl --kubeconfig K ARGS` with `stdin`; an error with its output.
fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running kubectl")?;
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .context("kubectl stdin")?
            .write_all(text.as_bytes())?;
    }
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "kubectl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Polls `kubectl auth can-i VERB RESOURCE --as USER` (a
/// SubjectAccessReview, judged by the same authorizer) every 100 ms until
/// it answers yes, for up to 30 s.
async fn wait_allowed(admin: &Path, user: &str, what: &[&str; 2]) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let out = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(admin)
            .args(["auth", "can-i", what[0], what[1], "--as", user])
            .output()
            .await
            .context("running kubectl auth can-i")?;
        if out.status.success() {
            return Ok(());
        }
        if Instant::now() > end {
            bail!(
                "{user} is still not allowed to {} {} after 30 s: {}",
                what[0],
                what[1],
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl ControlPlane {
    /// Starts a control plane of `kind`.
    pub async fn start(kind: Kind) -> anyhow::Result<Self> {
        match kind {
            Kind::Testserver => {
                let ts = TestServer::start_with(Config {
                    scheduler: false,
                    ..Config::default()
                })
                .await?;
                let admin = ts.client().await;
                Ok(ControlPlane::TestServer {
                    ts: Box::new(ts),
                    admin,
                })
            }
            Kind::Real => Self::start_real(Vec::new(), true).await,
        }
    }

    /// Starts the real control plane with `env` for `hack/cluster.sh up`
    /// (e.g. `KCM_KUBE_API_QPS`); says so on stdout when `announce`.
    pub async fn start_real(env: Vec<(String, String)>, announce: bool) -> anyhow::Result<Self> {
        let work = tempfile::Builder::new().prefix("chaos-real-").tempdir()?;
        let dir = work.path().join("cluster");
        let t = Instant::now();
        cluster_sh_async_env(vec!["up".into(), dir.display().to_string()], env).await?;
        if announce {
            println!(
                "real control plane up in {:.1?} (hack/cluster.sh up {})",
                t.elapsed(),
                dir.display()
            );
        }
        let admin = external_storage::args::client(Some(&dir.join("kubeconfig")), 0.0, 0)
            .await
            .context("client for the real cluster")?;
        Ok(ControlPlane::Real(Real {
            dir,
            work: Some(work),
            admin,
            restarts: Vec::new(),
        }))
    }

    /// The real apiserver's audit log (`None` on the test server).
    pub fn audit_log(&self) -> Option<PathBuf> {
        match self {
            ControlPlane::TestServer { .. } => None,
            ControlPlane::Real(r) => Some(r.dir.join("audit.log")),
        }
    }

    /// On the real cluster: a kubeconfig of ServiceAccount `default/<sa>`
    /// bound to `cluster-admin` (a program with no manifests of its own,
    /// told apart in the audit log by its user), and that user's name.
    pub async fn cluster_admin_sa_kubeconfig(&self, sa: &str) -> anyhow::Result<(PathBuf, String)> {
        let ControlPlane::Real(r) = self else {
            bail!("ServiceAccount kubeconfigs are for the real cluster only");
        };
        let admin = self.admin_kubeconfig();
        kubectl(
            &admin,
            &["apply", "-f", "-"],
            Some(&format!(
                "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {sa}, namespace: default}}\n---\n\
                 apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: {sa}}}\n\
                 roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}\n\
                 subjects: [{{kind: ServiceAccount, name: {sa}, namespace: default}}]\n"
            )),
        )?;
        let user = format!("system:serviceaccount:default:{sa}");
        wait_allowed(&admin, &user, &["create", "persistentvolumes"]).await?;
        let text = cluster_sh_async(vec![
            "token".into(),
            r.dir.display().to_string(),
            "default".into(),
            sa.into(),
        ])
        .await?;
        let file = r.dir.join(format!("kubeconfig-{sa}"));
        std::fs::write(&file, text)?;
        Ok((file, user))
    }

    /// Whether this is the real control plane.
    pub fn is_real(&self) -> bool {
        matches!(self, ControlPlane::Real(_))
    }

    /// A cluster-admin client.
    pub fn admin(&self) -> Client {
        match self {
            ControlPlane::TestServer { admin, .. } => admin.clone(),
            ControlPlane::Real(r) => r.admin.clone(),
        }
    }

    /// A cluster-admin kubeconfig.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        match self {
            ControlPlane::TestServer { ts, .. } => ts.kubeconfig_path().to_path_buf(),
            ControlPlane::Real(r) => r.dir.join("kubeconfig"),
        }
    }

    /// Fault injection: the test server's only.
    pub fn faults(&self) -> Option<Faults> {
        match self {
            ControlPlane::TestServer { ts, .. } => Some(ts.faults()),
            ControlPlane::Real(_) => None,
        }
    }

    /// Makes Ready Nodes `(name, kubernetes.io/hostname label)`: on the
    /// real cluster with `hack/cluster.sh node`, on the test server through
    /// the API. Both need them: the library reads a node-local instance's
    /// Node for its hostname label, and gives a claim whose selected node
    /// does not exist back to the scheduler.
    pub async fn nodes(&self, nodes: &[(&str, &str)]) -> anyhow::Result<()> {
        match self {
            ControlPlane::Real(r) => {
                for (name, hostname) in nodes {
                    cluster_sh_async(vec![
                        "node".into(),
                        r.dir.display().to_string(),
                        name.to_string(),
                        hostname.to_string(),
                    ])
                    .await?;
                }
            }
            ControlPlane::TestServer { admin, .. } => {
                for (name, hostname) in nodes {
                    crate::objects::ensure_node_labelled(admin, name, hostname).await?;
                }
            }
        }
        Ok(())
    }

    /// A kubeconfig for the provisioner under test. On the test server it is
    /// the admin one (as always). On the real cluster it authenticates as a
    /// ServiceAccount (TokenRequest through `hack/cluster.sh token`): with
    /// `deploy`, the one of `kubectl apply -f deploy/<deploy>` (so the real
    /// RBAC authorizer judges its manifests); without, `default/chaos-mem`
    /// bound to `cluster-admin` (the in-memory provisioner has no
    /// manifests), so its requests are told apart in the audit log.
    /// Returns the kubeconfig and the user name.
    pub async fn provisioner_kubeconfig(
        &self,
        deploy: Option<&str>,
    ) -> anyhow::Result<(PathBuf, Option<String>)> {
        let ControlPlane::Real(r) = self else {
            return Ok((self.admin_kubeconfig(), None));
        };
        let admin = self.admin_kubeconfig();
        let (ns, sa) = match deploy {
            Some(name) => {
                let d = e2e_support::deploy_dir(name);
                kubectl(&admin, &["apply", "-f", &d.display().to_string()], None)?;
                // The deploy/ manifests name their ServiceAccount after the
                // provisioner, in its own namespace.
                let sa = format!("{name}-provisioner");
                (sa.clone(), sa)
            }
            None => {
                kubectl(
                    &admin,
                    &["apply", "-f", "-"],
                    Some(
                        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: chaos-mem, namespace: default}\n---\n\
                         apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: chaos-mem}\n\
                         roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\n\
                         subjects: [{kind: ServiceAccount, name: chaos-mem, namespace: default}]\n",
                    ),
                )?;
                ("default".into(), "chaos-mem".into())
            }
        };
        let user = format!("system:serviceaccount:{ns}:{sa}");
        // The apiserver's RBAC authorizer learns of a new binding from a
        // watch: wait until it allows the ServiceAccount what the
        // provisioner does first, or its first calls are answered 403.
        wait_allowed(&admin, &user, &["create", "persistentvolumes"]).await?;
        let text = cluster_sh_async(vec![
            "token".into(),
            r.dir.display().to_string(),
            ns.clone(),
            sa.clone(),
        ])
        .await?;
        let file = r.dir.join(format!("kubeconfig-{sa}"));
        std::fs::write(&file, text)?;
        Ok((file, Some(user)))
    }

    /// The auditor of backend deletes.
    pub fn auditor(&self) -> Auditor {
        match self {
            ControlPlane::TestServer { ts, .. } => Auditor::Store(ts.store()),
            ControlPlane::Real(r) => Auditor::Api(r.admin.clone()),
        }
    }

    /// Starts recording what the control plane sees.
    pub fn observer(&self) -> Observer {
        match self {
            ControlPlane::TestServer { ts, .. } => Observer::start(ts.store()),
            ControlPlane::Real(r) => Observer::watch(&r.admin),
        }
    }

    /// The world now (with events when `events`; the test server's store
    /// always has them at hand). An API error on the real cluster is an
    /// error.
    pub async fn world(&self, provisioner: &str, events: bool) -> anyhow::Result<World> {
        match self {
            ControlPlane::TestServer { ts, .. } => Ok(World::read(&ts.store(), provisioner)),
            ControlPlane::Real(r) => World::list(&r.admin, provisioner, events)
                .await
                .context("listing claims, PVs and events"),
        }
    }

    /// Restarts the API server: the test server stops serving for `down`
    /// and serves again with the same data; the real kube-apiserver is
    /// restarted by `hack/cluster.sh restart` (same flags, same etcd; its
    /// own stop and start take the time they take, so `down` is not used).
    /// Describes what happened.
    pub async fn restart(&mut self, down: Duration) -> anyhow::Result<String> {
        match self {
            ControlPlane::TestServer { ts, .. } => {
                ts.stop().await;
                tokio::time::sleep(down).await;
                ts.restart().await.context("restarting the test server")?;
                Ok(format!("test server restarted after {down:.1?} down"))
            }
            ControlPlane::Real(r) => {
                let (t, from) = (Instant::now(), Timestamp::now());
                cluster_sh_async(vec!["restart".into(), r.dir.display().to_string()]).await?;
                r.restarts.push((from, Timestamp::now()));
                Ok(format!(
                    "kube-apiserver restarted (hack/cluster.sh restart took {:.1?})",
                    t.elapsed()
                ))
            }
        }
    }

    /// The run's API requests: the test server's counters (client requests
    /// only; its in-process controllers are not counted), or the real
    /// apiserver's audit log (every client: the provisioner, the driver,
    /// observer and auditor, kube-controller-manager, kube-scheduler), with
    /// the 403s answered to `user`.
    pub fn requests(&self, user: Option<&str>) -> Requests {
        match self {
            ControlPlane::TestServer { ts, .. } => {
                let stats = ts.stats();
                Requests {
                    total: stats.total(),
                    writes: stats.writes(),
                    ..Requests::default()
                }
            }
            ControlPlane::Real(r) => audit_requests(&r.dir.join("audit.log"), user, &r.restarts),
        }
    }

    /// Keeps the real cluster's directory (logs, audit log) after the run,
    /// and says where it is.
    pub fn keep_logs(&mut self) {
        if let ControlPlane::Real(r) = self {
            if let Some(w) = r.work.take() {
                let path = w.keep();
                eprintln!("the real cluster's logs are kept in {}", path.display());
            }
        }
    }
}

impl Drop for Real {
    fn drop(&mut self) {
        if let Err(e) = cluster_sh(&["down", &self.dir.display().to_string()]) {
            eprintln!("{e}");
        }
    }
}

/// Counts the requests in the audit log at `path` (one per audit ID; a
/// watch logs a ResponseStarted and a ResponseComplete stage), by client,
/// and lists the ones answered 403 to `user`, apart from those answered
/// during one of the `restarts` windows.
pub fn audit_requests(
    path: &Path,
    user: Option<&str>,
    restarts: &[(Timestamp, Timestamp)],
) -> Requests {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut seen = BTreeSet::new();
    let mut r = Requests::default();
    for line in text.lines() {
        let Ok(e) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let g = |p: &str| e.pointer(p).and_then(Value::as_str).unwrap_or_default();
        if !seen.insert(g("/auditID").to_string()) {
            continue;
        }
        let name = g("/user/username");
        let client = if name.starts_with("system:serviceaccount:") {
            name.to_string()
        } else {
            // kube-rs sends no user agent: with the admin user, that is this
            // run's driver, settle poll, observer and auditor.
            match g("/userAgent").split('/').next().unwrap_or_default() {
                "" => format!("{name} (no user agent: kube-rs, this run)"),
                agent => format!("{name} ({agent})"),
            }
        };
        let write = matches!(
            g("/verb"),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        );
        r.total += 1;
        r.writes += u64::from(write);
        let c = r.by_client.entry(client).or_default();
        c.0 += 1;
        c.1 += u64::from(write);
        if Some(name) == user
            && e.pointer("/responseStatus/code").and_then(Value::as_u64) == Some(403)
        {
            let what = format!(
                "{} {} {}/{} at {}",
                g("/verb"),
                g("/objectRef/resource"),
                g("/objectRef/namespace"),
                g("/objectRef/name"),
                g("/stageTimestamp")
            );
            let at = g("/stageTimestamp").parse::<Timestamp>().ok();
            if at.is_some_and(|at| restarts.iter().any(|(a, b)| (*a..=*b).contains(&at))) {
                r.denied_starting.push(what);
            } else {
                r.denied.push(what);
            }
        }
    }
    r
}

/// The audit log at `path` and the backups kube-apiserver rotated out of
/// it (`<stem>-<time>.<ext>` beside it: its log writer rotates at 100 MB
/// by default, which a 10,000-claim row passes), oldest first.
pub fn audit_files(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(stem)) = (path.parent(), path.file_stem()) else {
        return vec![path.to_path_buf()];
    };
    let prefix = format!("{}-", stem.to_string_lossy());
    let mut backups: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect();
    // The backups' names carry their rotation time: sorted by name is by time.
    backups.sort();
    backups.push(path.to_path_buf());
    backups
}

/// The requests of `user` in the audit log at `path` and its rotated
/// backups (one per audit ID), by `(verb, resource[/subresource])`.
pub fn audit_by_verb(path: &Path, user: &str) -> BTreeMap<(String, String), u64> {
    let text: String = audit_files(path)
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut seen = BTreeSet::new();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Ok(e) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let g = |p: &str| e.pointer(p).and_then(Value::as_str).unwrap_or_default();
        if g("/user/username") != user || !seen.insert(g("/auditID").to_string()) {
            continue;
        }
        let resource = match g("/objectRef/subresource") {
            "" => g("/objectRef/resource").to_string(),
            sub => format!("{}/{sub}", g("/objectRef/resource")),
        };
        *out.entry((g("/verb").to_string(), resource)).or_default() += 1;
    }
    out
}

/// Requests whose user agent starts with `agent` (kube-controller-manager
/// shares the admin user here, so its agent tells it apart): how many, and
/// how many were answered 409 Conflict. Each audit ID counts once.
pub fn audit_by_agent(path: &Path, agent: &str) -> (u64, u64) {
    let mut seen = BTreeSet::new();
    let (mut total, mut conflicts) = (0, 0);
    for file in audit_files(path) {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains(agent)) {
            let Ok(e) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let g = |p: &str| e.pointer(p).and_then(Value::as_str).unwrap_or_default();
            if !g("/userAgent").starts_with(agent) || !seen.insert(g("/auditID").to_string()) {
                continue;
            }
            total += 1;
            if e.pointer("/responseStatus/code").and_then(Value::as_u64) == Some(409) {
                conflicts += 1;
            }
        }
    }
    (total, conflicts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_by_agent_counts_requests_and_conflicts_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let line = |id: &str, agent: &str, code: u64| {
            serde_json::json!({"auditID": id, "stage": "ResponseComplete", "userAgent": agent,
                "responseStatus": {"code": code}})
            .to_string()
        };
        let kcm = "kube-controller-manager/v1.34.4 (linux/amd64)";
        let text = [
            line("1", kcm, 200),
            line("1", kcm, 200),
            line("2", kcm, 409),
            line("3", "kube-scheduler/v1.34.4", 409),
        ]
        .join("\n");
        std::fs::write(&log, text).unwrap();
        assert_eq!(audit_by_agent(&log, "kube-controller-manager/"), (2, 1));
    }

    #[test]
    fn audit_by_verb_counts_one_users_requests_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let line = |id: &str, stage: &str, user: &str, verb: &str, sub: &str| {
            serde_json::json!({"auditID": id, "stage": stage, "user": {"username": user},
                "verb": verb, "objectRef": {"resource": "persistentvolumeclaims", "subresource": sub}})
            .to_string()
        };
        let text = [
            line("1", "ResponseStarted", "me", "watch", ""),
            line("1", "ResponseComplete", "me", "watch", ""),
            line("2", "ResponseComplete", "me", "patch", "status"),
            line("3", "ResponseComplete", "other", "patch", ""),
        ]
        .join("\n");
        let (first, rest) = text.split_at(text.find("\n").unwrap() + 1);
        std::fs::write(dir.path().join("audit-2026-01-01T00-00-00.000.log"), first).unwrap();
        std::fs::write(&log, rest).unwrap();
        assert_eq!(audit_files(&log).len(), 2);
        let r = audit_by_verb(&log, "me");
        let key = |v: &str, r: &str| (v.to_string(), r.to_string());
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[&key("watch", "persistentvolumeclaims")], 1);
        assert_eq!(r[&key("patch", "persistentvolumeclaims/status")], 1);
    }

    #[test]
    fn audit_requests_count_each_request_once_by_client() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let line = |id: &str, stage: &str, user: &str, agent: &str, verb: &str, code: u64| {
            let at = if id == "4" {
                "2026-01-01T00:00:05Z"
            } else {
                "2026-01-01T00:01:00Z"
            };
            serde_json::json!({"auditID": id, "stage": stage, "user": {"username": user}, "userAgent": agent,
                "verb": verb, "objectRef": {"resource": "persistentvolumes", "name": "pv"},
                "responseStatus": {"code": code}, "stageTimestamp": at})
            .to_string()
        };
        let sa = "system:serviceaccount:x:y";
        let text = [
            line("1", "ResponseStarted", sa, "hostpath", "watch", 200),
            line("1", "ResponseComplete", sa, "hostpath", "watch", 200),
            line("2", "ResponseComplete", sa, "hostpath", "create", 403),
            line(
                "3",
                "ResponseComplete",
                "cluster-admin",
                "kube-controller-manager/v1.34.4 (linux)",
                "patch",
                200,
            ),
            line("4", "ResponseComplete", sa, "hostpath", "get", 403),
        ]
        .join("\n");
        std::fs::write(&log, text).unwrap();
        let restart = (
            "2026-01-01T00:00:00Z".parse().unwrap(),
            "2026-01-01T00:00:10Z".parse().unwrap(),
        );
        let r = audit_requests(&log, Some(sa), &[restart]);
        assert_eq!((r.total, r.writes), (4, 2));
        assert_eq!(r.by_client[sa], (3, 1));
        assert_eq!(
            r.by_client["cluster-admin (kube-controller-manager)"],
            (1, 1)
        );
        assert_eq!(
            r.denied,
            vec!["create persistentvolumes /pv at 2026-01-01T00:01:00Z".to_string()]
        );
        assert_eq!(r.denied_starting.len(), 1, "{r:?}");
    }
}
