//! Instances of the real `hostpath-provisioner` binary for the chaos run:
//! one per node (node-local mode has no leader election; each node's
//! instance serves only claims scheduled to it), each with its own volume
//! root. A kill is SIGKILL; the replacement reuses the node's root, as a
//! DaemonSet pod restarted on the same host would.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::backend::Snapshot;
use crate::hostpath::Process;

/// Provisioner name of the hostpath binary.
pub const PROVISIONER: &str = "external-storage.io/hostpath";

/// The node names, one instance each.
pub const NODES: [&str; 2] = ["chaos-node-a", "chaos-node-b"];

/// Their `kubernetes.io/hostname` labels on the real cluster (the second
/// differs from its node name, as on clusters with FQDN node names).
pub const HOSTNAMES: [&str; 2] = ["chaos-node-a", "chaos-node-b.chaos.internal"];

/// The running instances (one slot per node; `None` while killed).
pub struct Instances {
    exe: PathBuf,
    kubeconfig: PathBuf,
    dir: PathBuf,
    running: Vec<Option<Process>>,
}

impl Instances {
    /// Starts one instance per node, roots under `dir`.
    pub fn start(exe: &Path, kubeconfig: &Path, dir: &Path) -> anyhow::Result<Self> {
        let mut me = Self {
            exe: exe.into(),
            kubeconfig: kubeconfig.into(),
            dir: dir.into(),
            running: Vec::new(),
        };
        for i in 0..NODES.len() {
            let p = me.launch(i)?;
            me.running.push(Some(p));
        }
        Ok(me)
    }

    fn root(&self, i: usize) -> PathBuf {
        self.dir.join(NODES[i])
    }

    fn launch(&self, i: usize) -> anyhow::Result<Process> {
        let root = self.root(i);
        std::fs::create_dir_all(&root)?;
        let root = root.to_string_lossy().to_string();
        Process::start(
            &self.exe,
            &self.kubeconfig,
            &[
                "--node-name",
                NODES[i],
                "--root",
                &root,
                "--kube-api-qps",
                "0",
                "--retry-interval-start",
                "100ms",
                "--retry-interval-max",
                "2s",
                "--failed-provision-threshold",
                "0",
                "--failed-delete-threshold",
                "0",
                // A kill between a directory and its PV leaves a pending
                // record; the settle wait sees the intent sweep remove it.
                // Longer than the PV save's retries (1 + 2 + 2 + 2 s), as
                // the flag requires: a save still retried after 2 s lost
                // its volume to the sweep here once.
                "--pending-volume-grace",
                "10s",
            ],
            &self.dir,
        )
    }

    /// Waits until every running instance answers `/readyz`.
    pub async fn wait_ready(&mut self, within: std::time::Duration) -> anyhow::Result<()> {
        for p in self.running.iter_mut().flatten() {
            p.wait_ready(within).await?;
        }
        Ok(())
    }

    /// SIGKILLs the instance of node `i % nodes` if it runs; returns the node.
    pub fn kill(&mut self, i: usize) -> Option<&'static str> {
        let i = i % NODES.len();
        let mut p = self.running[i].take()?;
        p.kill();
        Some(NODES[i])
    }

    /// Starts every node's instance that is not running.
    pub fn revive(&mut self) -> anyhow::Result<()> {
        for i in 0..NODES.len() {
            if self.running[i].is_none() {
                let p = self.launch(i)?;
                self.running[i] = Some(p);
            }
        }
        Ok(())
    }

    /// Peak RSS of each running instance, KiB.
    pub fn peak_rss_kib(&self) -> Vec<Option<u64>> {
        self.running
            .iter()
            .map(|p| p.as_ref().and_then(Process::peak_rss_kib))
            .collect()
    }

    /// The backend as the file systems show it: every volume directory
    /// (the default path pattern names it after its PV) on every root.
    pub fn snapshot(&self) -> Snapshot {
        let mut volumes = BTreeSet::new();
        for i in 0..NODES.len() {
            if let Ok(entries) = std::fs::read_dir(self.root(i)) {
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().to_string();
                    if !name.starts_with('.') && e.path().is_dir() {
                        volumes.insert(name);
                    }
                }
            }
        }
        Snapshot {
            volumes,
            ..Snapshot::default()
        }
    }

    /// Stops every instance (SIGKILL; nothing is in flight after settling).
    pub fn stop_all(&mut self) {
        for p in self.running.iter_mut().flatten() {
            p.kill();
        }
    }
}
