//! `bench --local-volume N`: the real `local-volume-provisioner` binary
//! discovering N mounted directories on one node, against kube-testserver.
//!
//! The binary offers a directory only when the mount table lists it as a
//! mount point, so the run starts it in a mount namespace of its own
//! (`unshare --mount --propagation private`): a tmpfs holds N directories,
//! each bind-mounted onto itself, and the host's mount table is not
//! touched. Measured: start → `/readyz`, start → all N PVs created (its
//! first discovery pass), API requests per PV by verb, peak RSS with its
//! node's N PVs in its cache, RSS 10 s later, CPU-seconds per 1,000 PVs.
//! Linux and root only (mount namespaces); a run without them fails with
//! the reason.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use kube_testserver::registry::id;
use kube_testserver::TestServer;

use crate::hostpath::Process;
use crate::objects;
use crate::requests::{Own, PerVolume};

/// The class of the discovered volumes.
pub const CLASS: &str = "local-bench";

/// One run's numbers.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Mounted directories offered.
    pub volumes: usize,
    /// PVs the binary created.
    pub pvs: usize,
    /// Making the N bind mounts (before the binary starts; not its work).
    pub mounts: Duration,
    /// Binary started → `/readyz` 200.
    pub ready: Duration,
    /// Binary started → the N-th PV in the store.
    pub all_pvs: Duration,
    /// Requests per PV, by verb.
    pub requests: PerVolume,
    /// Peak RSS 2 s after the last PV (`VmHWM`), KiB.
    pub peak_rss_kib: Option<u64>,
    /// RSS 10 s after that, KiB.
    pub settled_rss_kib: Option<u64>,
    /// CPU-seconds from the binary's start until the peak was read.
    pub cpu_seconds: Option<f64>,
}

/// The shell script run inside the new mount namespace: N bind mounts
/// under `disks`, then the binary in its place (`exec`: same pid, so
/// RSS and CPU are the provisioner's own).
fn script(disks: &Path, n: usize) -> String {
    let d = disks.display();
    format!(
        "set -e; mount -t tmpfs bench-disks '{d}'; i=0; \
         while [ $i -lt {n} ]; do mkdir '{d}'/v$i; mount --bind '{d}'/v$i '{d}'/v$i; i=$((i+1)); done; \
         echo mounted; exec \"$@\""
    )
}

/// Runs `exe` (the local-volume binary) with `n` mounted directories on
/// node `node` of `ts`; `tmp` holds its config, state and log.
pub async fn run(
    ts: &TestServer,
    exe: &Path,
    tmp: &Path,
    node: &str,
    n: usize,
) -> anyhow::Result<Measured> {
    let admin = ts.client().await;
    objects::ensure_node(&admin, node).await?;
    objects::ensure_class(
        &admin,
        &objects::storage_class(CLASS, "kubernetes.io/no-provisioner", "Delete", true),
    )
    .await?;
    let run_dir = tempfile::tempdir_in(tmp)?;
    let disks = run_dir.path().join("disks");
    let state = run_dir.path().join("state");
    std::fs::create_dir_all(&disks)?;
    std::fs::create_dir_all(&state)?;
    let config = run_dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "storageClassMap:\n  {CLASS}:\n    hostDir: {}\n",
            disks.display()
        ),
    )?;
    ts.reset_stats();
    let port = e2e_support::free_port();
    let metrics = format!("127.0.0.1:{port}");
    let script = script(&disks, n);
    let exe = exe.to_str().context("binary path is not UTF-8")?;
    let args: Vec<&str> = vec![
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
        "sh",
        exe,
        "--kubeconfig",
        ts.kubeconfig_path().to_str().context("path is not UTF-8")?,
        "--metrics-address",
        &metrics,
        "--node-name",
        node,
        "--config",
        config.to_str().context("path is not UTF-8")?,
        "--state-dir",
        state.to_str().context("path is not UTF-8")?,
        "--kube-api-qps",
        "0",
    ];
    let began = Instant::now();
    let mut proc = Process::start_plain(Path::new("unshare"), &args, &[("RUST_LOG", "warn")], tmp)?
        .with_metrics_port(port);
    let mounts = proc
        .wait_log("mounted", Duration::from_secs(600))
        .await
        .context("making the bind mounts (needs root and unshare from util-linux)")?;
    let started = began + mounts;
    // The shell's own CPU (10,000 forks) is not the provisioner's.
    let cpu_at_exec = proc.cpu_seconds();
    proc.wait_ready(Duration::from_secs(120)).await?;
    let ready = started.elapsed();
    let store = ts.store();
    let end = Instant::now() + Duration::from_secs(600);
    let pvs = loop {
        let count = store.count(id("", "persistentvolumes"));
        if count >= n {
            break count;
        }
        anyhow::ensure!(
            Instant::now() < end,
            "{count} of {n} PVs after 600 s; log:\n{}",
            proc.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let all_pvs = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peak_rss_kib = proc.peak_rss_kib();
    let cpu_seconds = proc
        .cpu_seconds()
        .zip(cpu_at_exec)
        .map(|(now, then)| now - then);
    let requests = PerVolume::compute(&ts.stats(), &Own::default(), pvs);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let settled_rss_kib = proc.rss_kib();
    proc.kill();
    Ok(Measured {
        volumes: n,
        pvs,
        mounts,
        ready,
        all_pvs,
        requests,
        peak_rss_kib,
        settled_rss_kib,
        cpu_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_mounts_each_directory_onto_itself_then_execs() {
        let s = script(Path::new("/t/disks"), 3);
        assert!(s.contains("mount -t tmpfs bench-disks '/t/disks'"), "{s}");
        assert!(s.contains("[ $i -lt 3 ]"), "{s}");
        assert!(
            s.contains("mount --bind '/t/disks'/v$i '/t/disks'/v$i"),
            "{s}"
        );
        assert!(s.ends_with("exec \"$@\""), "{s}");
    }
}
