//! `bench --nfs N`: the real `nfs-provisioner` binary, with the real
//! NFS-Ganesha it supervises, provisioning N claims against kube-testserver,
//! then restarted over its N exports.
//!
//! Every claim costs the binary an export record, a directory and a live
//! `AddExport` over D-Bus, so this measures the whole server, not only the
//! controller. Measured: start → `/readyz` with no exports; N claims →
//! Bound (claims/s, p50/p99, API requests per volume by verb); the
//! binary's peak RSS and its RSS 10 s after the burst; its CPU-seconds per
//! 1,000 claims over the burst; Ganesha's own RSS holding N exports; and
//! after a restart over the N records (config rendered with N exports,
//! every one checked live before ready): restart → ready and the binary's
//! peak RSS with the N PVs in its cache. Needs root and the packages of
//! nfs/tests/e2e.rs (`nfs-ganesha nfs-ganesha-vfs rpcbind dbus`); only one
//! Ganesha may run on the machine at a time (rpcbind's port 111).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use kube_testserver::TestServer;

use crate::hostpath::Process;
use crate::objects;
use crate::throughput::{self, Workload};

/// The class of the bench's claims.
pub const CLASS: &str = "nfs-bench";
/// The binary's default provisioner name.
pub const PROVISIONER: &str = "external-storage.io/nfs";

/// One run's numbers.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Claims created.
    pub claims: usize,
    /// Binary started (no exports yet) → `/readyz` 200.
    pub ready: Duration,
    /// The N claims: throughput, latencies, requests per volume.
    pub burst: throughput::Measured,
    /// The binary's peak RSS (`VmHWM`) 2 s after the last claim was Bound, KiB.
    pub peak_rss_kib: Option<u64>,
    /// The binary's RSS 10 s after that, KiB.
    pub settled_rss_kib: Option<u64>,
    /// The binary's CPU-seconds over the burst.
    pub cpu_seconds: Option<f64>,
    /// Ganesha's RSS with the N exports live, KiB.
    pub ganesha_rss_kib: Option<u64>,
    /// Restarted over the N export records → `/readyz` 200.
    pub restart_ready: Duration,
    /// The restarted binary's peak RSS 2 s after ready (N PVs cached), KiB.
    pub restart_peak_rss_kib: Option<u64>,
}

/// The binary's arguments: everything under `dir`, Ganesha on local ports
/// `nfs`/`mount` admitting only 127.0.0.1, no grace period, unthrottled
/// client (the provisioner's own cost, like the local-volume rows).
fn args(kubeconfig: &Path, dir: &Path, metrics: u16, nfs: u16, mount: u16) -> Vec<String> {
    let path = |p: &str| dir.join(p).display().to_string();
    [
        "--kubeconfig",
        &kubeconfig.display().to_string(),
        "--metrics-address",
        &format!("127.0.0.1:{metrics}"),
        "--export-root",
        &path("export"),
        "--run-dir",
        &path("run"),
        "--server",
        "127.0.0.1",
        "--bind-address",
        "127.0.0.1",
        "--allowed-clients",
        "127.0.0.1",
        "--nfs-port",
        &nfs.to_string(),
        "--mount-port",
        &mount.to_string(),
        "--grace-period",
        "0",
        "--kube-api-qps",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Ganesha's pid, from the pid file the binary hands it.
fn ganesha_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("run/ganesha.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Runs `exe` (the nfs binary) against `ts` for `n` claims; `tmp` holds
/// its export root, run directory and logs.
pub async fn run(
    ts: &TestServer,
    exe: &Path,
    tmp: &Path,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<Measured> {
    let admin = ts.client().await;
    objects::ensure_class(
        &admin,
        &objects::storage_class(CLASS, PROVISIONER, "Delete", false),
    )
    .await?;
    let dir = tempfile::tempdir_in(tmp)?;
    let (nfs, mount) = (e2e_support::free_port(), e2e_support::free_port());
    let start = |metrics: u16| -> anyhow::Result<Process> {
        let a = args(ts.kubeconfig_path(), dir.path(), metrics, nfs, mount);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        Ok(
            Process::start_plain(exe, &a, &[("RUST_LOG", "warn")], dir.path())?
                .with_metrics_port(metrics),
        )
    };

    let mut proc = start(e2e_support::free_port())?;
    let ready = proc
        .wait_ready(Duration::from_secs(120))
        .await
        .context("the nfs binary and Ganesha (needs root and nfs-ganesha, see nfs/tests/e2e.rs)")?;
    let cpu_before = proc.cpu_seconds();
    let burst = throughput::run(
        ts,
        &admin,
        &Workload {
            claims: n,
            class: CLASS.into(),
            provisioner: PROVISIONER.into(),
            node: None,
            concurrency: 16,
            timeout,
        },
    )
    .await?;
    anyhow::ensure!(
        burst.complete,
        "{} of {n} claims Bound in {timeout:?}; log:\n{}",
        burst.bound,
        proc.log()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peak_rss_kib = proc.peak_rss_kib();
    let cpu_seconds = proc
        .cpu_seconds()
        .zip(cpu_before)
        .map(|(now, then)| now - then);
    let ganesha_rss_kib = ganesha_pid(dir.path()).and_then(crate::machine::rss_kib);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let settled_rss_kib = proc.rss_kib();
    proc.kill();

    // Ganesha dies with its parent (PR_SET_PDEATHSIG); the new binary kills
    // any stale one named by the pid file before it starts its own.
    let began = Instant::now();
    let mut proc = start(e2e_support::free_port())?;
    proc.wait_ready(Duration::from_secs(600))
        .await
        .with_context(|| format!("restart over {n} exports"))?;
    let restart_ready = began.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restart_peak_rss_kib = proc.peak_rss_kib();
    proc.kill();
    Ok(Measured {
        claims: n,
        ready,
        burst,
        peak_rss_kib,
        settled_rss_kib,
        cpu_seconds,
        ganesha_rss_kib,
        restart_ready,
        restart_peak_rss_kib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_under_the_run_directory_and_only_localhost_is_admitted() {
        let a = args(Path::new("/k"), Path::new("/t/d"), 1, 2, 3).join(" ");
        assert!(a.contains("--export-root /t/d/export"), "{a}");
        assert!(a.contains("--run-dir /t/d/run"), "{a}");
        assert!(a.contains("--allowed-clients 127.0.0.1"), "{a}");
        assert!(a.contains("--nfs-port 2 --mount-port 3"), "{a}");
        assert!(a.contains("--metrics-address 127.0.0.1:1"), "{a}");
    }
}
