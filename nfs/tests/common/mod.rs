//! What the nfs scenario tests share: the provisioner binary's command line
//! on the test ports ([`Server`]) and the Service whose ClusterIP it
//! publishes, the libnfs userspace client (the kernel here has no NFS
//! client) on those ports, the root and tool preflight, and a reaper for the
//! server processes the provisioner starts.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use e2e_support::{create, is_ready, wait_for, Binary};
use k8s_openapi::api::core::v1::{PersistentVolume, Service};
use serde_json::json;

/// The NFS port the tests give Ganesha (not 2049: a host may run its own).
pub const NFS_PORT: u16 = 32049;
/// The MOUNT protocol port the tests give Ganesha.
pub const MOUNT_PORT: u16 = 32048;

/// How a test starts the `nfs-provisioner` binary: Ganesha bound to
/// 127.0.0.1 on [`NFS_PORT`] and [`MOUNT_PORT`], no grace period, quick
/// canary retries, `/metrics` and `/readyz` on 127.0.0.1:`metrics_port`.
/// [`Server::new`] has what most tests want; a test sets a field where it
/// differs.
pub struct Server<'a> {
    /// `--export-root`.
    pub export_root: &'a Path,
    /// `--run-dir`: where the provisioner writes Ganesha's pid files (give
    /// the same directory to a [`Reaper`]).
    pub run_dir: &'a Path,
    /// `--service-name`: the Service whose ClusterIP goes into every PV.
    pub service_name: &'a str,
    /// `--service-namespace`.
    pub service_namespace: &'a str,
    /// `--allowed-clients`; empty: not given (only the Nodes may mount).
    pub allowed_clients: &'a str,
    /// `--probe-interval`; `None` leaves the binary's default.
    pub probe_interval: Option<&'a str>,
    /// `--retry-interval-max`.
    pub retry_interval_max: &'a str,
    /// The port of `--metrics-address` on 127.0.0.1.
    pub metrics_port: u16,
}

impl<'a> Server<'a> {
    /// Serving [`nfs_service`] (`nfs` in `default`) to 127.0.0.1 only (where
    /// the tests' NFS client connects from), probing every 300 ms, retrying
    /// at most every 2 s.
    pub fn new(export_root: &'a Path, run_dir: &'a Path, metrics_port: u16) -> Self {
        Server {
            export_root,
            run_dir,
            service_name: "nfs",
            service_namespace: "default",
            allowed_clients: "127.0.0.1",
            probe_interval: Some("300ms"),
            retry_interval_max: "2s",
            metrics_port,
        }
    }

    /// The command line, then `extra`.
    pub fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--export-root",
            self.export_root.to_str().unwrap(),
            "--run-dir",
            self.run_dir.to_str().unwrap(),
            "--service-name",
            self.service_name,
            "--service-namespace",
            self.service_namespace,
            "--bind-address",
            "127.0.0.1",
            "--nfs-port",
            &NFS_PORT.to_string(),
            "--mount-port",
            &MOUNT_PORT.to_string(),
            "--grace-period",
            "0",
        ]
        .map(String::from)
        .into();
        if !self.allowed_clients.is_empty() {
            args.extend(["--allowed-clients".into(), self.allowed_clients.into()]);
        }
        if let Some(interval) = self.probe_interval {
            args.extend(["--probe-interval".into(), interval.into()]);
        }
        args.extend(
            [
                "--retry-interval-start",
                "200ms",
                "--retry-interval-max",
                self.retry_interval_max,
                "--metrics-address",
                &format!("127.0.0.1:{}", self.metrics_port),
            ]
            .map(String::from),
        );
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }

    /// Starts the binary as `kubeconfig`'s user, its log in `log_dir`.
    pub fn spawn(&self, kubeconfig: &Path, log_dir: &Path, extra: &[&str]) -> Binary {
        let args = self.args(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Binary::spawn(
            env!("CARGO_BIN_EXE_nfs-provisioner"),
            kubeconfig,
            &args,
            log_dir,
        )
    }
}

/// Waits until the provisioner with `/readyz` on `metrics_port` is ready.
pub async fn wait_ready(metrics_port: u16) {
    wait_for("/readyz 200", || async move {
        is_ready(metrics_port).then_some(())
    })
    .await;
}

/// Creates the Service [`Server::new`] names, `nfs` in `default`, with the
/// ClusterIP 127.0.0.1: the server address the provisioner puts in every PV.
pub async fn nfs_service(client: &kube::Client) -> Service {
    create(
        &kube::Api::namespaced(client.clone(), "default"),
        json!({"metadata": {"name": "nfs"}, "spec": {"clusterIP": "127.0.0.1", "ports": [{"name": "nfs", "port": 2049}]}}),
    )
    .await
}

/// An `nfs://` URL of `file` in export `path` on 127.0.0.1 for libnfs.
pub fn url(path: &str, file: &str, version: u8) -> String {
    let file = if file.is_empty() {
        String::new()
    } else {
        format!("/{file}")
    };
    let ports = if version == 3 {
        format!("nfsport={NFS_PORT}&mountport={MOUNT_PORT}")
    } else {
        format!("nfsport={NFS_PORT}")
    };
    format!("nfs://127.0.0.1{path}{file}?version={version}&{ports}")
}

/// Runs a libnfs tool, panicking when it cannot be started.
pub fn run(tool: &str, args: &[&str]) -> Output {
    Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e} (install libnfs-utils)"))
}

/// Writes `data` to `file` in export `path` over NFSv3 (`nfs-cp`).
pub fn nfs_write(path: &str, file: &str, data: &[u8], tmp: &Path) {
    let local = tmp.join(format!("upload-{file}"));
    std::fs::write(&local, data).unwrap();
    let out = run("nfs-cp", &[local.to_str().unwrap(), &url(path, file, 3)]);
    assert!(
        out.status.success(),
        "nfs-cp to {path}/{file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads `file` of export `path` over NFSv3 (`nfs-cat`); the client's
/// output as the error.
pub fn nfs_read(path: &str, file: &str) -> Result<Vec<u8>, String> {
    let out = run("nfs-cat", &[&url(path, file, 3)]);
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The export path of an nfs PV.
pub fn nfs_path(pv: &PersistentVolume) -> String {
    pv.spec.as_ref().unwrap().nfs.as_ref().unwrap().path.clone()
}

/// Panics unless this runs as root with Ganesha and libnfs installed.
pub fn preflight() {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false);
    assert!(
        root,
        "the NFS end-to-end tests need root (Ganesha, rpcbind on port 111): run them as root, e.g. through hack/test.sh"
    );
    for tool in [
        "ganesha.nfsd",
        "dbus-daemon",
        "rpcbind",
        "nfs-cp",
        "nfs-cat",
        "nfs-ls",
    ] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false)
            || Path::new("/usr/sbin").join(tool).is_file();
        assert!(
            found,
            "{tool} not found: install nfs-ganesha nfs-ganesha-vfs rpcbind dbus libnfs-utils (hack/test.sh does)"
        );
    }
}

/// On drop (also when the test fails), kills what the provisioner started
/// and could outlive it: rpcbind drops root, which clears the parent-death
/// signal. The provisioner's pid files in its run directory name them.
pub struct Reaper(pub PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        for (file, comm) in [("ganesha.pid", "ganesha.nfsd"), ("rpcbind.pid", "rpcbind")] {
            if let Some(pid) = alive_pid(&self.0.join(file), comm) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// The pid in `pidfile` if that process is alive and named `comm`.
pub fn alive_pid(pidfile: &Path, comm: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let found = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (found.trim() == comm && stat.split(' ').nth(2) != Some("Z")).then_some(pid)
}
