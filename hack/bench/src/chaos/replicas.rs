//! Replicas of the in-memory provisioner: `ProvisionController`s with
//! leader election on one Lease, sharing one backend, each with its own
//! client. A kill aborts the replica's task mid-flight, so its Lease is not
//! released and any operation is cut wherever it was (the in-process
//! equivalent of SIGKILL).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use external_storage::{ControllerOptions, LeaderElection, Metrics, ProvisionController};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backend::MemBackend;

/// Provisioner name of the chaos replicas.
pub const PROVISIONER: &str = "chaos.external-storage.io/mem";

struct Replica {
    identity: String,
    token: CancellationToken,
    handle: JoinHandle<()>,
    metrics: Arc<Metrics>,
}

/// The running replicas.
pub struct Replicas {
    kubeconfig: PathBuf,
    backend: Arc<MemBackend>,
    running: Vec<Replica>,
    started: usize,
    killed: Vec<String>,
}

impl Replicas {
    /// No replicas yet; they will talk to the server of `kubeconfig`.
    pub fn new(kubeconfig: PathBuf, backend: Arc<MemBackend>) -> Self {
        Self {
            kubeconfig,
            backend,
            running: Vec::new(),
            started: 0,
            killed: Vec::new(),
        }
    }

    /// Options of every replica: short Lease (3 s / 2 s / 0.5 s) and short
    /// retries so a run settles in seconds, and no failure threshold, so
    /// every claim is eventually served once the faults stop.
    fn options(identity: &str) -> ControllerOptions {
        let mut o = ControllerOptions::new(PROVISIONER);
        o.identity = identity.into();
        let mut le = LeaderElection::new(PROVISIONER, "default", identity);
        le.lease_duration = Duration::from_secs(3);
        le.renew_deadline = Duration::from_secs(2);
        le.retry_period = Duration::from_millis(500);
        o.leader_election = Some(le);
        o.retry_interval_start = Duration::from_millis(100);
        o.retry_interval_max = Duration::from_secs(2);
        o.pv_save_retry_interval = Duration::from_millis(100);
        o.failed_provision_threshold = 0;
        o.failed_delete_threshold = 0;
        o
    }

    /// Starts one more replica.
    pub async fn spawn(&mut self) -> anyhow::Result<()> {
        self.started += 1;
        let identity = format!("replica-{}", self.started);
        let client = external_storage::args::client(Some(&self.kubeconfig), 0.0, 0).await?;
        let ctrl = ProvisionController::with_shared(
            client,
            self.backend.clone(),
            Self::options(&identity),
        );
        let metrics = ctrl.metrics();
        let token = CancellationToken::new();
        let t = token.clone();
        let who = identity.clone();
        let handle = tokio::spawn(async move {
            if let Err(e) = ctrl.run(t).await {
                eprintln!("{who}: controller stopped: {e}");
            }
        });
        self.running.push(Replica {
            identity,
            token,
            handle,
            metrics,
        });
        Ok(())
    }

    /// Identities of the replicas that run their workers now.
    pub fn leaders(&self) -> Vec<String> {
        self.running
            .iter()
            .filter(|r| r.metrics.is_leader.get() == 1)
            .map(|r| r.identity.clone())
            .collect()
    }

    /// Replicas running.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// Whether none runs.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Aborts the leader (or, during a hand-over with no leader, the oldest
    /// replica); returns its identity and whether it was leading.
    pub async fn kill_leader(&mut self) -> Option<(String, bool)> {
        let idx = self
            .running
            .iter()
            .position(|r| r.metrics.is_leader.get() == 1);
        let was_leader = idx.is_some();
        let r = self
            .running
            .remove(idx.or((!self.running.is_empty()).then_some(0))?);
        r.handle.abort();
        let _ = r.handle.await;
        self.killed.push(r.identity.clone());
        Some((r.identity, was_leader))
    }

    /// Identities killed so far.
    pub fn killed(&self) -> &[String] {
        &self.killed
    }

    /// Graceful stop of every replica (running operations finish, the
    /// Lease is released).
    pub async fn stop_all(&mut self) {
        for r in self.running.drain(..) {
            r.token.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(20), r.handle).await;
        }
    }
}
