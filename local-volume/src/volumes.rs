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
//!
//! Cleaning destroys data, so it is guarded twice (docs/security.md, hole
//! 4). `delete` cleans a PV only when [`check_ours`] agrees: its name is the
//! one discovery gives that entry on this node, and this instance's state
//! knows the volume (it wrote `Dirty` before creating the PV, or it already
//! cleaned this very PV). And no cleaning at all (from `delete` or from
//! discovery) starts while any other PV that is Bound, or about to be,
//! references the volume's path ([`in_use_by`], over a fresh list of every
//! PV in the cluster, not only this node's labelled ones): a stale duplicate,
//! an old provisioner's PV or a hand-made one never gets a disk wiped that a
//! Bound PV is using.

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
use crate::labels::NODE_LABEL;
use crate::metrics::{ClassMode, LocalMetrics};
use crate::pv::{self, NodeInfo};
use crate::scan::{classify, EntryKind, MountTable};
use crate::state::{StateDir, VolumeState};

/// A released PV this instance does not clean: the volume is left as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotOurs {
    /// Not the name discovery gives the entry.
    #[error(
        "{name} is not the PV this provisioner makes for entry {entry} of class {class} on \
         node {node} (that is {expected}): a duplicate, an older provisioner's or a hand-made \
         PV; the volume was not cleaned. Delete the PV by hand once you know whose data it is"
    )]
    OtherName {
        /// The PV's name.
        name: String,
        /// The discovery entry its path names.
        entry: String,
        /// Its class.
        class: String,
        /// Its node.
        node: String,
        /// The name discovery gives that entry.
        expected: String,
    },
    /// This instance's state does not know the volume as offered under it.
    #[error(
        "this instance has no record of offering {name} (its state for the volume is \
         {state}): the volume was not cleaned; check which PV uses entry {entry}"
    )]
    NoRecord {
        /// The PV's name.
        name: String,
        /// The recorded state, as debug text.
        state: String,
        /// The discovery entry.
        entry: String,
    },
}

/// Why `pv` (for `entry` of `class` on `node`) is not this instance's to
/// clean (pure): its name is not the one discovery gives that entry, or
/// this instance's state does not know the volume as offered under it.
pub fn check_ours(
    pv: &PersistentVolume,
    entry: &str,
    class: &str,
    node: &str,
    state: &VolumeState,
) -> Result<(), NotOurs> {
    let name = pv.metadata.name.as_deref().unwrap_or_default();
    let expected = pv::pv_name(entry, node, class);
    if name != expected {
        return Err(NotOurs::OtherName {
            name: name.into(),
            entry: entry.into(),
            class: class.into(),
            node: node.into(),
            expected,
        });
    }
    let uid = pv.metadata.uid.as_deref().unwrap_or_default();
    match state {
        VolumeState::Dirty => Ok(()),
        VolumeState::Cleaned { uid: done } if !uid.is_empty() && done == uid => Ok(()),
        other => Err(NotOurs::NoRecord {
            name: name.into(),
            state: format!("{other:?}"),
            entry: entry.into(),
        }),
    }
}

/// The first PV other than `name` that is Bound (or has a claim and is not
/// yet released) and whose `local` or `hostPath` path is `path` or lies
/// inside it or around it (pure).
pub fn in_use_by<'a>(
    pvs: &'a [PersistentVolume],
    name: &str,
    path: &std::path::Path,
) -> Option<&'a PersistentVolume> {
    pvs.iter().find(|other| {
        if other.metadata.name.as_deref() == Some(name) {
            return false;
        }
        let Some(spec) = other.spec.as_ref() else {
            return false;
        };
        let phase = pv::phase_of(other).unwrap_or_default();
        let bound = phase == "Bound"
            || (spec.claim_ref.is_some() && !matches!(phase, "Released" | "Failed"));
        let their = spec
            .local
            .as_ref()
            .map(|l| l.path.as_str())
            .or(spec.host_path.as_ref().map(|h| h.path.as_str()));
        bound
            && their.is_some_and(|p| {
                let p = std::path::Path::new(p);
                p.starts_with(path) || path.starts_with(p)
            })
    })
}

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
    /// Done: what was cleaned, or why cleaning failed.
    Finished(Result<Cleaned, String>),
}

struct Job {
    uid: String,
    handle: JoinHandle<Result<Cleaned, String>>,
}

/// Everything both loops share.
pub struct Volumes {
    /// The configuration in force (replaced by a hot reload, `reload.rs`).
    config: std::sync::RwLock<Arc<Config>>,
    /// This node.
    pub node: NodeInfo,
    /// Durable volume state.
    pub state: StateDir,
    /// Discovery and cleaning metrics of this node.
    pub metrics: Arc<LocalMetrics>,
    /// Timeout of one block cleaner run.
    pub block_timeout: Duration,
    /// Lists every PV before a cleaning starts (the in-use guard); `None`
    /// only in tests without an API server.
    client: Option<kube::Client>,
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
        client: Option<kube::Client>,
    ) -> Self {
        Volumes {
            config: std::sync::RwLock::new(Arc::new(config)),
            node,
            state,
            metrics,
            block_timeout,
            client,
            jobs: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration in force; a pass or a cleaning keeps the one it
    /// started with.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts `config` in force (a hot reload that passed validation).
    pub fn replace_config(&self, config: Config) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }

    /// Refuses when another PV that is Bound references `path`.
    async fn check_not_in_use(&self, pv_name: &str, path: &std::path::Path) -> Result<(), String> {
        let Some(client) = &self.client else {
            return Ok(());
        };
        let all = kube::Api::<PersistentVolume>::all(client.clone())
            .list(&Default::default())
            .await
            .map_err(|e| {
                format!(
                    "listing PVs to check that {} is not in use: {e}",
                    path.display()
                )
            })?;
        match in_use_by(&all.items, pv_name, path) {
            Some(other) => Err(format!(
                "{} is used by PV {} (Bound or being bound): not cleaned; resolve which PV owns \
                 the volume, then delete the other one by hand",
                path.display(),
                other.metadata.name.as_deref().unwrap_or_default()
            )),
            None => Ok(()),
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
        let config = self.config();
        let class = config
            .classes
            .get(class_name)
            .ok_or_else(|| format!("class {class_name} is not in the configuration"))?;
        let mounts = MountTable::read().map_err(|e| e.to_string())?;
        let path = class.mount_dir.join(entry);
        let kind = match classify(&path, &mounts) {
            Ok(k) => k,
            Err(reason) => return Ok(Cleaned::Missing(reason.to_string())),
        };
        let mode = match kind {
            EntryKind::MountPoint => "Filesystem",
            EntryKind::BlockDevice(_) => "Block",
        };
        let labels = ClassMode::new(class_name, mode);
        // PVs name the host's path (hostDir), not this container's mountDir.
        self.check_not_in_use(pv_name, &class.host_dir.join(entry))
            .await?;
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
        let config = v.config();
        let Some(class) = config.classes.get(&class_name) else {
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
        let state = v
            .state
            .get(&name)
            .map_err(|e| DeleteError::Failed(format!("reading the state of {name}: {e}")))?;
        check_ours(pv, &entry, &class_name, &v.node.name, &state)
            .map_err(|e| DeleteError::Failed(e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pv(value: serde_json::Value) -> PersistentVolume {
        serde_json::from_value(value).unwrap()
    }

    fn released(name: &str, uid: &str) -> PersistentVolume {
        pv(json!({
            "metadata": {"name": name, "uid": uid},
            "spec": {"local": {"path": "/mnt/fast/vol1"}, "storageClassName": "fast"},
            "status": {"phase": "Released"},
        }))
    }

    #[test]
    fn only_the_pv_discovery_makes_for_the_entry_and_that_state_knows_is_cleaned() {
        let name = pv::pv_name("vol1", "node-1", "fast");
        let mine = released(&name, "u1");
        assert!(check_ours(&mine, "vol1", "fast", "node-1", &VolumeState::Dirty).is_ok());
        let done = VolumeState::Cleaned { uid: "u1".into() };
        assert!(check_ours(&mine, "vol1", "fast", "node-1", &done).is_ok());
        // A hand-made or duplicate PV with another name, even for the same path.
        let e = check_ours(
            &released("copy", "u2"),
            "vol1",
            "fast",
            "node-1",
            &VolumeState::Dirty,
        )
        .unwrap_err();
        assert!(matches!(&e, NotOurs::OtherName { expected, .. } if *expected == name));
        assert!(e.to_string().contains(&name), "{e}");
        // The right name but for another node or class.
        for (node, class) in [("node-2", "fast"), ("node-1", "slow")] {
            assert!(check_ours(&mine, "vol1", class, node, &VolumeState::Dirty).is_err());
        }
        // This instance never offered it, or cleaned it for another PV.
        for state in [
            VolumeState::Unknown,
            VolumeState::Cleaned { uid: "u0".into() },
            VolumeState::Cleaned { uid: String::new() },
        ] {
            let e = check_ours(&mine, "vol1", "fast", "node-1", &state).unwrap_err();
            assert!(matches!(e, NotOurs::NoRecord { .. }), "{e}");
            assert!(e.to_string().contains("no record"), "{e}");
        }
    }

    #[test]
    fn a_volume_any_bound_pv_references_is_in_use() {
        let path = std::path::Path::new("/mnt/fast/vol1");
        let bound = |name: &str, source: serde_json::Value| {
            pv(json!({"metadata": {"name": name}, "spec": source, "status": {"phase": "Bound"}}))
        };
        let all = vec![
            released("me", "u1"),
            bound("elsewhere", json!({"local": {"path": "/mnt/fast/vol10"}})),
            pv(
                json!({"metadata": {"name": "old"}, "spec": {"local": {"path": "/mnt/fast/vol1"},
                "claimRef": {"name": "gone"}}, "status": {"phase": "Released"}}),
            ),
        ];
        assert!(
            in_use_by(&all, "me", path).is_none(),
            "released copies and siblings do not count"
        );
        for other in [
            bound("squatter", json!({"local": {"path": "/mnt/fast/vol1"}})),
            bound(
                "hostpath",
                json!({"hostPath": {"path": "/mnt/fast/vol1/sub"}}),
            ),
            bound("around", json!({"hostPath": {"path": "/mnt/fast"}})),
            pv(
                json!({"metadata": {"name": "binding"}, "spec": {"local": {"path": "/mnt/fast/vol1"},
                "claimRef": {"name": "c"}}, "status": {"phase": "Available"}}),
            ),
        ] {
            let mut with = all.clone();
            with.push(other.clone());
            assert_eq!(
                in_use_by(&with, "me", path).and_then(|p| p.metadata.name.clone()),
                other.metadata.name,
            );
        }
        // The PV being cleaned itself never counts.
        let me_bound = bound("me", json!({"local": {"path": "/mnt/fast/vol1"}}));
        assert!(in_use_by(&[me_bound], "me", path).is_none());
    }
}
