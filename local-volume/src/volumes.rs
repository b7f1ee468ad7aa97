//! [`Volumes`]: what the library's controller calls (the [`Provisioner`]
//! trait) and what the discovery loop shares with it: the configuration,
//! this node, the state directory and the cleaning jobs.
//!
//! The library's volume loop, in node-local mode, hands us each `Released`
//! PV of ours with policy `Delete` whose node affinity names this node;
//! `delete` cleans the volume and the library then deletes the PV, after
//! which discovery offers the volume again. Claims are never provisioned:
//! static classes use `kubernetes.io/no-provisioner`, so the library's claim
//! loop never hands us one; `provision` says so if it ever does.
//!
//! Cleaning runs as a background job per PV name (a shred can take hours):
//! `delete` starts it and answers `InProgress` until it is done, and the
//! discovery loop uses the same jobs, so one volume is never cleaned twice
//! at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use external_storage::{
    async_trait, DeleteError, PersistentVolume, PersistentVolumeClaim, ProvisionError,
    ProvisionOptions, Provisioned, Provisioner, StorageClass,
};
use tokio::task::JoinHandle;

use crate::clean::{self, CleanError};
use crate::config::Config;
use crate::metrics::{ClassMode, LocalMetrics};
use crate::pv::{self, NodeInfo, NODE_LABEL};
use crate::scan::{classify, EntryKind, MountTable};
use crate::state::{StateDir, VolumeState};

/// How a finished cleaning ended.
#[derive(Debug)]
pub enum Cleaned {
    /// The volume was cleaned; its state is `Cleaned`.
    Done,
    /// The volume is not there (unmounted, device gone): nothing was
    /// cleaned and its state was left as it was, so it is cleaned before it
    /// is offered again.
    Missing(String),
}

/// Where a cleaning stands.
#[derive(Debug)]
pub enum CleanPoll {
    /// Still running.
    Running,
    /// Finished.
    Finished(Result<Cleaned, String>),
}

struct Job {
    uid: String,
    handle: JoinHandle<Result<Cleaned, String>>,
}

/// Everything both loops share.
pub struct Volumes {
    /// Validated configuration.
    pub config: Config,
    /// This node.
    pub node: NodeInfo,
    /// Durable volume state.
    pub state: StateDir,
    /// Metrics.
    pub metrics: Arc<LocalMetrics>,
    /// Timeout of one block cleaner run.
    pub block_timeout: Duration,
    jobs: Mutex<HashMap<String, Job>>,
}

impl Volumes {
    /// Shared state for one node.
    pub fn new(
        config: Config,
        node: NodeInfo,
        state: StateDir,
        metrics: Arc<LocalMetrics>,
        block_timeout: Duration,
    ) -> Self {
        Volumes {
            config,
            node,
            state,
            metrics,
            block_timeout,
            jobs: Mutex::new(HashMap::new()),
        }
    }

    /// Starts (or checks on) the cleaning of entry `entry` of `class`, the
    /// volume of PV `pv_name` (`uid`: the released PV's UID, `""` when no PV
    /// exists). Waits up to `wait` for it to finish.
    pub async fn clean(
        self: &Arc<Self>,
        pv_name: &str,
        uid: &str,
        class: &str,
        entry: &str,
        wait: Duration,
    ) -> CleanPoll {
        {
            let mut jobs = self.jobs.lock().expect("jobs lock");
            match jobs.get(pv_name) {
                Some(job) if job.uid == uid || !job.handle.is_finished() => {}
                _ => {
                    let me = self.clone();
                    let (p, u, c, e) = (
                        pv_name.to_string(),
                        uid.to_string(),
                        class.to_string(),
                        entry.to_string(),
                    );
                    let handle = tokio::spawn(async move { me.run_clean(&p, &u, &c, &e).await });
                    jobs.insert(
                        pv_name.to_string(),
                        Job {
                            uid: uid.to_string(),
                            handle,
                        },
                    );
                }
            }
        }
        let deadline = Instant::now() + wait;
        loop {
            let finished = {
                let mut jobs = self.jobs.lock().expect("jobs lock");
                if jobs
                    .get(pv_name)
                    .is_some_and(|j| j.uid == uid && j.handle.is_finished())
                {
                    jobs.remove(pv_name)
                } else {
                    None
                }
            };
            if let Some(job) = finished {
                return CleanPoll::Finished(
                    job.handle
                        .await
                        .unwrap_or_else(|e| Err(format!("cleaning task failed: {e}"))),
                );
            }
            if Instant::now() >= deadline {
                return CleanPoll::Running;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Drops the finished cleaning of `pv_name` for `uid`, if any.
    pub fn forget_finished(&self, pv_name: &str, uid: &str) {
        let mut jobs = self.jobs.lock().expect("jobs lock");
        if jobs
            .get(pv_name)
            .is_some_and(|j| j.uid == uid && j.handle.is_finished())
        {
            jobs.remove(pv_name);
        }
    }

    async fn run_clean(
        &self,
        pv_name: &str,
        uid: &str,
        class_name: &str,
        entry: &str,
    ) -> Result<Cleaned, String> {
        let class = self
            .config
            .classes
            .get(class_name)
            .ok_or_else(|| format!("class {class_name} is not in the configuration"))?;
        let mounts = MountTable::read().map_err(|e| e.to_string())?;
        let path = class.mount_dir.join(entry);
        let kind = match classify(&path, &mounts) {
            Ok(k) => k,
            Err(reason) => return Ok(Cleaned::Missing(reason)),
        };
        let mode = match kind {
            EntryKind::MountPoint => "Filesystem",
            EntryKind::BlockDevice(_) => "Block",
        };
        let labels = ClassMode::new(class_name, mode);
        let started = Instant::now();
        tracing::info!(pv = pv_name, path = %path.display(), mode, "cleaning volume");
        let result = match kind {
            EntryKind::MountPoint => {
                let dir = class.mount_dir.clone();
                let e = entry.to_string();
                tokio::task::spawn_blocking(move || {
                    clean::clean_filesystem(&dir, &e, &mounts)
                        .map(|r| format!("removed {} files and {} directories", r.files, r.dirs))
                })
                .await
                .map_err(|e| format!("cleaning task failed: {e}"))?
            }
            EntryKind::BlockDevice(_) => clean::clean_block(
                &class.block_cleaner_command,
                &path,
                &mounts,
                self.block_timeout,
            )
            .await
            .map(|_| "block cleaner succeeded".to_string()),
        };
        match result {
            Ok(summary) => {
                self.state
                    .set(
                        pv_name,
                        &VolumeState::Cleaned {
                            uid: uid.to_string(),
                        },
                    )
                    .map_err(|e| format!("recording that {pv_name} is clean: {e}"))?;
                self.metrics.clean_total.get_or_create(&labels).inc();
                self.metrics
                    .clean_duration
                    .get_or_create(&labels)
                    .observe(started.elapsed().as_secs_f64());
                tracing::info!(pv = pv_name, took = ?started.elapsed(), "{summary}");
                Ok(Cleaned::Done)
            }
            Err(CleanError::Gone { reason, .. }) => Ok(Cleaned::Missing(reason)),
            Err(e) => {
                self.metrics.clean_failed_total.get_or_create(&labels).inc();
                Err(e.to_string())
            }
        }
    }

    /// Whether `pv` carries this node's owner label.
    pub fn labelled_ours(&self, pv: &PersistentVolume) -> bool {
        pv.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(NODE_LABEL))
            .is_some_and(|v| *v == self.node.label_value())
    }
}

/// The [`Provisioner`] the library drives: deletion = cleaning.
pub struct LocalVolumes(pub Arc<Volumes>);

#[async_trait]
impl Provisioner for LocalVolumes {
    async fn provision(&self, _: ProvisionOptions) -> Result<Provisioned, ProvisionError> {
        Err(ProvisionError::Ignored(
            "the local-volume provisioner is static: it offers discovered volumes and never \
             provisions claims; use a class with provisioner kubernetes.io/no-provisioner"
                .into(),
        ))
    }

    fn should_provision(&self, _: &PersistentVolumeClaim, _: &StorageClass) -> bool {
        false
    }

    /// Only PVs labelled for this node: a class `selector` may make another
    /// node's PV name this node in its affinity, but its disk is not here.
    fn should_delete(&self, pv: &PersistentVolume) -> bool {
        self.0.labelled_ours(pv)
    }

    fn supports_block(&self) -> bool {
        true
    }

    async fn delete(&self, pv: &PersistentVolume) -> Result<(), DeleteError> {
        let v = &self.0;
        let name = pv.metadata.name.clone().unwrap_or_default();
        if !v.labelled_ours(pv) {
            return Err(DeleteError::Ignored(format!(
                "{name} belongs to another node"
            )));
        }
        let class_name = pv::class_of(pv).unwrap_or_default().to_string();
        let Some(class) = v.config.classes.get(&class_name) else {
            return Err(DeleteError::Failed(format!(
                "class {class_name:?} is not in the provisioner's configuration, so {name}'s volume \
                 cannot be found and was not cleaned: add the class back, or wipe the disk and \
                 delete the PV by hand"
            )));
        };
        let Some(entry) = pv::entry_of(pv, class) else {
            return Err(DeleteError::Failed(format!(
                "{name}'s local.path is not directly inside hostDir {}: not cleaned; wipe the \
                 disk and delete the PV by hand",
                class.host_dir.display()
            )));
        };
        let uid = pv.metadata.uid.clone().unwrap_or_default();
        match v
            .clean(&name, &uid, &class_name, &entry, Duration::from_secs(2))
            .await
        {
            CleanPoll::Running => Err(DeleteError::InProgress(format!("cleaning {entry}"))),
            CleanPoll::Finished(Ok(Cleaned::Done)) => Ok(()),
            CleanPoll::Finished(Ok(Cleaned::Missing(reason))) => {
                tracing::warn!(
                    pv = name,
                    entry,
                    %reason,
                    "the volume is not there, so it was not cleaned; the PV is deleted and the \
                     volume will be cleaned before it is offered again if it comes back"
                );
                Ok(())
            }
            CleanPoll::Finished(Err(e)) => Err(DeleteError::Failed(e)),
        }
    }
}
