//! The provisioner under test in a chaos run, whichever it is: the
//! in-memory replicas (leader election, kills abort the leader) or the
//! hostpath binary's per-node instances (kills are SIGKILL).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use super::instances::{self, Instances};
use super::replicas::{self, Replicas};
use crate::backend::{MemBackend, Snapshot};

/// The provisioner under test.
#[derive(Clone)]
pub enum Fleet {
    /// Two leader-elected in-memory controllers over one audited backend.
    Mem {
        /// The replicas.
        replicas: Arc<Mutex<Replicas>>,
        /// Their shared backend.
        backend: Arc<MemBackend>,
    },
    /// The hostpath binary, one instance per node.
    Hostpath(Arc<Mutex<Instances>>),
}

impl Fleet {
    /// The provisioner name claims and classes use.
    pub fn provisioner(&self) -> &'static str {
        match self {
            Fleet::Mem { .. } => replicas::PROVISIONER,
            Fleet::Hostpath(_) => instances::PROVISIONER,
        }
    }

    /// Node-local provisioners need claims scheduled to a node (and a
    /// WaitForFirstConsumer class); claim `i` goes to the returned node.
    pub fn node_for(&self, i: usize) -> Option<&'static str> {
        match self {
            Fleet::Mem { .. } => None,
            Fleet::Hostpath(_) => Some(instances::NODES[i % instances::NODES.len()]),
        }
    }

    /// Kills one replica/instance (`pick` chooses the hostpath node; the
    /// in-memory fleet kills its leader, waiting up to 1 s for a moment when
    /// a provision is in flight, the window where a crash could leak a
    /// volume); describes what was killed.
    pub async fn kill(&self, pick: usize) -> Option<String> {
        match self {
            Fleet::Mem { replicas, backend } => {
                let end = tokio::time::Instant::now() + Duration::from_secs(1);
                while backend.in_flight() == 0 && tokio::time::Instant::now() < end {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let (who, leading) = replicas.lock().await.kill_leader().await?;
                Some(format!(
                    "{who} ({})",
                    if leading {
                        "leader"
                    } else {
                        "no leader at that moment"
                    }
                ))
            }
            Fleet::Hostpath(i) => i
                .lock()
                .await
                .kill(pick)
                .map(|n| format!("the instance of {n} (SIGKILL)")),
        }
    }

    /// Brings the fleet back to full strength after a kill.
    pub async fn respawn(&self) -> anyhow::Result<()> {
        match self {
            Fleet::Mem { replicas, .. } => replicas.lock().await.spawn().await,
            Fleet::Hostpath(i) => i.lock().await.revive(),
        }
    }

    /// Replicas running their workers now (always 0 for node-local instances,
    /// which have no leader election).
    pub async fn leaders(&self) -> usize {
        match self {
            Fleet::Mem { replicas, .. } => replicas.lock().await.leaders().len(),
            Fleet::Hostpath(_) => 0,
        }
    }

    /// Waits until the fleet serves (a leader elected, or the instances ready).
    pub async fn wait_serving(&self, within: Duration) -> anyhow::Result<()> {
        if let Fleet::Hostpath(i) = self {
            i.lock().await.wait_ready(within).await?;
        }
        if let Fleet::Mem { .. } = self {
            let end = tokio::time::Instant::now() + within;
            while self.leaders().await == 0 {
                anyhow::ensure!(
                    tokio::time::Instant::now() < end,
                    "no replica became leader within {within:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// The backend's volumes now.
    pub async fn snapshot(&self) -> Snapshot {
        match self {
            Fleet::Mem { backend, .. } => backend.snapshot(),
            Fleet::Hostpath(i) => i.lock().await.snapshot(),
        }
    }

    /// In-memory provisions cut short by a kill (after the volume was made,
    /// before `provision` returned); `None` for the hostpath binary.
    pub fn provisions_cut(&self) -> Option<u64> {
        match self {
            Fleet::Mem { backend, .. } => Some(backend.cut()),
            Fleet::Hostpath(_) => None,
        }
    }

    /// Killed replicas so far, for the report.
    pub async fn killed(&self) -> Vec<String> {
        match self {
            Fleet::Mem { replicas, .. } => replicas.lock().await.killed().to_vec(),
            Fleet::Hostpath(_) => Vec::new(),
        }
    }

    /// Stops everything.
    pub async fn stop(&self) {
        match self {
            Fleet::Mem { replicas, .. } => replicas.lock().await.stop_all().await,
            Fleet::Hostpath(i) => i.lock().await.stop_all(),
        }
    }
}
