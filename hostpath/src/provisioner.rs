//! The [`Provisioner`] implementation: a directory per claim under the root.
//!
//! The library runs this in node-local mode: it only hands us claims whose
//! selected node is ours and PVs whose node affinity names our node, so this
//! code never works for another node and needs no helper pods.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use external_storage::events::{Events, Reason};
use external_storage::ondelete::OnDelete;
use external_storage::params::UnsupportedClaim;
use external_storage::{
    async_trait, DeleteError, IntentRecords, PendingVolume, PersistentVolume, ProvisionError,
    ProvisionOptions, Provisioned, Provisioner,
};
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, LocalVolumeSource, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, PersistentVolumeClaim, PersistentVolumeSpec, VolumeNodeAffinity,
};

use crate::params::{ClassParams, VolumeType};
use crate::pattern::PatternInput;
use crate::roots::{self, Layout, Roots};
use hostfs::intent::Claimant;
use hostfs::quota::{self, ProjectQuotas};
use hostfs::root::{Deleted, Discarded, Release, Root, RootError};
use kube::Resource;

/// Annotation on our PVs: the directory, relative to the root.
pub const PATH_ANNOTATION: &str = "hostpath.external-storage.io/path";
/// Annotation on our PVs: the node the directory is on.
pub const NODE_ANNOTATION: &str = "hostpath.external-storage.io/node";
/// Annotation on our PVs: the root (configured path) the directory is in.
pub const ROOT_ANNOTATION: &str = "hostpath.external-storage.io/root";
/// Annotation on PVs whose size is enforced: the directory's quota project id.
pub const QUOTA_ANNOTATION: &str = "hostpath.external-storage.io/quota-project";
/// PV annotation: the user the directory was given to (class parameter `uid`).
pub const UID_ANNOTATION: &str = "hostpath.external-storage.io/uid";
/// PV annotation: the group the directory was given to (class parameter
/// `gid`), under the name the kubelet reads: it adds the group to the
/// supplemental groups of every pod that mounts the volume.
pub const VOLUME_GID_ANNOTATION: &str = "pv.beta.kubernetes.io/gid";
/// The node label the PV's node affinity uses.
pub use external_storage::annotations::HOSTNAME_LABEL;

/// Makes and deletes claim directories on this node.
pub struct HostPath {
    roots: Arc<Roots>,
    node: String,
    events: Option<Events>,
}

impl HostPath {
    /// A provisioner for `node` with volumes under `root`.
    pub fn new(root: Root, node: impl Into<String>) -> Self {
        Self::with_roots(Arc::new(Roots::new(Layout::single(root))), node, None)
    }

    /// A provisioner for `node` with the roots of the configuration in
    /// force in `roots` (replaced by a reload), publishing
    /// `VolumeArchived` / `VolumeRetained` events through `events`
    /// (without, those outcomes are only logged).
    pub fn with_roots(roots: Arc<Roots>, node: impl Into<String>, events: Option<Events>) -> Self {
        HostPath {
            roots,
            node: node.into(),
            events,
        }
    }

    /// Removes the archives whose retention has passed in every root in
    /// force and frees their quota project ids (blocking). Only archives
    /// this provisioner recorded are ever removed. Returns their names.
    pub fn sweep_archives(&self) -> Result<Vec<String>, hostfs::archive::SweepError> {
        let mut removed = Vec::new();
        for root in self.roots.current().roots() {
            let projects = Self::projects_dir(root.path());
            let now = SystemTime::now();
            removed.extend(hostfs::archive::sweep(
                root.archives(),
                root.path(),
                &projects,
                now,
            )?);
        }
        Ok(removed)
    }

    async fn publish(&self, pv: &PersistentVolume, reason: Reason, note: String) {
        tracing::info!(pv = ?pv.metadata.name, "{note}");
        if let Some(events) = &self.events {
            events.publish(&pv.object_ref(&()), reason, note).await;
        }
    }

    /// Where the project id of each quota-enforced PV is recorded.
    pub fn projects_dir(root: &Path) -> PathBuf {
        roots::projects_dir(root)
    }

    /// The root of `pv` on this node and its directory relative to it.
    fn root_of(&self, pv: &PersistentVolume) -> Result<(Arc<Root>, String), String> {
        let name = pv.metadata.name.as_deref().unwrap_or_default();
        let path = host_path_of(pv).ok_or_else(|| format!("{name} has no path"))?;
        self.roots
            .current()
            .find(Path::new(path), roots::recorded_root(pv, ROOT_ANNOTATION))
            .map_err(|e| format!("PV {name}: {e}"))
    }
}

/// Why a claim cannot be served by a hostpath volume (pure, no I/O).
pub fn check_claim(claim: &PersistentVolumeClaim) -> Result<(), UnsupportedClaim> {
    external_storage::params::reject_selector(claim)?;
    let modes = (claim.spec.as_ref())
        .and_then(|s| s.access_modes.as_ref())
        .cloned()
        .unwrap_or_default();
    match modes
        .into_iter()
        .find(|m| !matches!(m.as_str(), "ReadWriteOnce" | "ReadWriteOncePod"))
    {
        Some(mode) => Err(UnsupportedClaim::AccessMode {
            mode,
            why: "a hostpath volume lives on one node; use ReadWriteOnce or ReadWriteOncePod",
        }),
        None => Ok(()),
    }
}

/// The PV spec fragment for a directory at `path` on the node whose
/// `kubernetes.io/hostname` label is `hostname`.
pub fn volume_spec(volume_type: VolumeType, path: &Path, hostname: &str) -> PersistentVolumeSpec {
    let path = path.display().to_string();
    let mut spec = PersistentVolumeSpec {
        node_affinity: Some(VolumeNodeAffinity {
            required: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: HOSTNAME_LABEL.into(),
                        operator: "In".into(),
                        values: Some(vec![hostname.to_string()]),
                    }]),
                    ..Default::default()
                }],
            }),
        }),
        ..Default::default()
    };
    match volume_type {
        VolumeType::HostPath => {
            spec.host_path = Some(HostPathVolumeSource {
                path,
                type_: Some("Directory".into()),
            })
        }
        VolumeType::Local => {
            spec.local = Some(LocalVolumeSource {
                path,
                fs_type: None,
            })
        }
    }
    spec
}

/// The directory of a PV, relative to `root`, if the PV points under it.
pub fn relative_path(pv: &PersistentVolume, root: &Path) -> Option<String> {
    let rel = Path::new(host_path_of(pv)?).strip_prefix(root).ok()?;
    Some(rel.to_str()?.to_string())
}

/// The absolute path of a PV's directory (`hostPath` or `local`).
pub fn host_path_of(pv: &PersistentVolume) -> Option<&str> {
    let spec = pv.spec.as_ref()?;
    spec.host_path
        .as_ref()
        .map(|h| h.path.as_str())
        .or(spec.local.as_ref().map(|l| l.path.as_str()))
}

#[async_trait]
impl Provisioner for HostPath {
    async fn provision(&self, opts: ProvisionOptions) -> Result<Provisioned, ProvisionError> {
        let params = ClassParams::parse(opts.storage_class.parameters.as_ref())?;
        // The library resolves the node: the scheduler's selected node, or
        // the one node an Immediate class's allowedTopologies names.
        let node = opts.selected_node.clone();
        if node.as_deref() != Some(self.node.as_str()) {
            return Err(ProvisionError::Ignored(format!(
                "claim is for node {node:?}, this instance serves {}",
                self.node
            )));
        }
        check_claim(&opts.claim)?;
        let class = opts
            .storage_class
            .metadata
            .name
            .as_deref()
            .unwrap_or_default();
        // A node the configuration gives no storage: another node may have
        // some, so the scheduler is asked to pick again.
        let candidates = (self.roots.current().candidates(class, &self.node))
            .map_err(|e| ProvisionError::Reschedule(e.0))?;
        let bytes = external_storage::params::storage_request(&opts.claim)?.map(|(_, bytes)| bytes);
        let meta = &opts.claim.metadata;
        let rel = params
            .path_pattern
            .render(&PatternInput {
                pv_name: &opts.pv_name,
                namespace: meta.namespace.as_deref().unwrap_or_default(),
                name: meta.name.as_deref().unwrap_or_default(),
                labels: meta.labels.as_ref(),
                annotations: meta.annotations.as_ref(),
            })
            .map_err(|e| {
                ProvisionError::Infeasible(format!("StorageClass parameter `pathPattern`: {e}"))
            })?;

        let pv_name = opts.pv_name.clone();
        let rel_for_fs = rel.clone();
        let claimant = Claimant {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
        };
        let (root_path, path, project) = tokio::task::spawn_blocking(
            move || -> Result<(PathBuf, PathBuf, Option<u32>), ProvisionError> {
                let root = roots::pick(&candidates).ok_or_else(|| {
                    ProvisionError::Failed("no configured root of this node is open".into())
                })?;
                let quotas = if params.enforce_capacity {
                    let q = ProjectQuotas::detect(root.path())
                        .map_err(|e| ProvisionError::Infeasible(e.to_string()))?;
                    let bytes = bytes.ok_or_else(|| {
                        ProvisionError::Infeasible(
                            "enforceCapacity is on but the claim requests no storage".into(),
                        )
                    })?;
                    Some((q, bytes))
                } else {
                    None
                };
                // The intent first (module docs of `hostfs::intent`): a
                // crash after this leaves a record the intent sweep reads.
                root.mark_pending(&pv_name, &claimant)
                    .map_err(|e| ProvisionError::Failed(e.to_string()))?;
                let path = root
                    .create_volume_owned(&rel_for_fs, &pv_name, params.mode, params.owner)
                    .map_err(|e| ProvisionError::Failed(e.to_string()))?;
                let mut project = None;
                if let Some((q, bytes)) = quotas {
                    let id =
                        quota::project_id(&Self::projects_dir(root.path()), root.path(), &pv_name)
                            .map_err(|e| ProvisionError::Failed(e.to_string()))?;
                    q.set_limit(&path, id, bytes)
                        .map_err(|e| ProvisionError::Failed(e.to_string()))?;
                    project = Some(id);
                }
                Ok((root.path().to_path_buf(), path, project))
            },
        )
        .await
        .map_err(|e| ProvisionError::Failed(format!("provisioning task failed: {e}")))??;

        // Node affinity names the hostname label's value, which differs
        // from the node name on clusters with FQDN node names.
        let hostname = opts.node_hostname.as_deref().unwrap_or(&self.node);
        let mut out = Provisioned::new(volume_spec(params.volume_type, &path, hostname));
        out.annotations = BTreeMap::from([
            (PATH_ANNOTATION.to_string(), rel),
            (NODE_ANNOTATION.to_string(), self.node.clone()),
            (ROOT_ANNOTATION.to_string(), root_path.display().to_string()),
        ]);
        if let Some(id) = project {
            out.annotations
                .insert(QUOTA_ANNOTATION.to_string(), id.to_string());
        }
        if let Some(uid) = params.owner.uid {
            out.annotations
                .insert(UID_ANNOTATION.to_string(), uid.to_string());
        }
        if let Some(gid) = params.owner.gid {
            // The kubelet adds this group to every pod that mounts the
            // volume, so a pod of any user can use a 0770 directory.
            out.annotations
                .insert(VOLUME_GID_ANNOTATION.to_string(), gid.to_string());
        }
        out.annotations.extend(params.on_delete.annotations());
        Ok(out)
    }

    /// Ours are the pending records of `hostfs` (the claim loop then sends
    /// no intent finalizer patches).
    fn intent_records(&self) -> Option<&dyn IntentRecords> {
        Some(self)
    }

    /// Expansion: without `enforceCapacity` the size is nominal (a directory
    /// has no size), so only the PV's capacity grows; with it, the quota's
    /// hard limit is raised first.
    async fn expand(&self, pv: &PersistentVolume, bytes: u64) -> Result<(), ProvisionError> {
        let (root, rel) = self.root_of(pv).map_err(ProvisionError::Failed)?;
        let project = pv
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(QUOTA_ANNOTATION))
            .map(|p| {
                p.parse::<u32>().map_err(|_| {
                    ProvisionError::Failed(format!("{QUOTA_ANNOTATION} {p:?} is not a project id"))
                })
            })
            .transpose()?;
        let Some(project) = project else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || {
            let q = ProjectQuotas::detect(root.path())
                .map_err(|e| ProvisionError::Infeasible(e.to_string()))?;
            q.set_limit(&root.host_path(&rel), project, bytes)
                .map_err(|e| ProvisionError::Failed(e.to_string()))
        })
        .await
        .map_err(|e| ProvisionError::Failed(format!("expand task failed: {e}")))?
    }

    async fn delete(&self, pv: &PersistentVolume) -> Result<(), DeleteError> {
        let name = pv.metadata.name.clone().unwrap_or_default();
        // A PV whose root is no longer configured is not deleted: its
        // ownership records cannot be checked (a Warning says so).
        let (root, rel) = self.root_of(pv).map_err(DeleteError::Failed)?;
        // The policy recorded on the PV at provisioning; a damaged one
        // deletes nothing.
        let how = match OnDelete::from_pv(pv).map_err(|e| DeleteError::Failed(e.to_string()))? {
            OnDelete::Delete => Release::Delete,
            OnDelete::Retain => Release::Retain,
            OnDelete::Archive { retention } => Release::Archive {
                now: SystemTime::now(),
                retention,
            },
        };
        let fs_root = root.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let root = fs_root;
            let deleted = root.release_volume(&rel, &name, how)?;
            // An archived or retained directory keeps its quota project id
            // (its files carry it): released only when the data is gone.
            if deleted == Deleted::Removed {
                let projects = Self::projects_dir(root.path());
                quota::free_project(&projects, root.path(), &name)
                    .map_err(|e| RootError::BadPath(rel.clone(), e.to_string()))?;
            }
            Ok::<_, RootError>((rel, deleted))
        })
        .await
        .map_err(|e| DeleteError::Failed(format!("delete task failed: {e}")))?;
        match outcome {
            Ok((_, Deleted::Removed)) => Ok(()),
            Ok((rel, Deleted::Archived(rec))) => {
                let note = format!(
                    "the data of {rel} was archived to {} on node {}, kept {}",
                    root.host_path(&rec.name).display(),
                    self.node,
                    rec.kept()
                );
                self.publish(pv, Reason::VolumeArchived, note).await;
                Ok(())
            }
            Ok((rel, Deleted::Retained)) => {
                let note = format!(
                    "the data was retained at {} on node {}; remove it by hand when it is no longer needed",
                    root.host_path(&rel).display(),
                    self.node
                );
                self.publish(pv, Reason::VolumeRetained, note).await;
                Ok(())
            }
            Ok((rel, Deleted::NotOurs)) => {
                tracing::warn!(
                    path = rel,
                    "no ownership record for this PV: its directory (if any) is left in place"
                );
                Ok(())
            }
            Ok((rel, Deleted::Mismatch { recorded })) => Err(DeleteError::Failed(format!(
                "the PV points at `{rel}` but this provisioner made `{recorded}` for it; \
                 nothing was deleted: check the PV and remove the data by hand"
            ))),
            Err(e) => Err(DeleteError::Failed(e.to_string())),
        }
    }
}

/// The pending records of every root in force (`hostfs::intent`), for the
/// controller's intent sweep. A root dropped from the configuration is not
/// swept (its records cannot be checked against a root we do not hold).
#[async_trait]
impl IntentRecords for HostPath {
    async fn pending(&self) -> Result<Vec<PendingVolume>, String> {
        let roots: Vec<Arc<Root>> = self.roots.current().roots().cloned().collect();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for root in roots {
                let pending = root
                    .pending()
                    .map_err(|e| format!("{}: {e}", root.path().display()))?;
                out.extend(pending.into_iter().map(|p| PendingVolume {
                    pv_name: p.pv,
                    claim_namespace: p.claimant.namespace,
                    claim_name: p.claimant.name,
                    claim_uid: p.claimant.uid,
                    recorded_at: p.recorded_at,
                }));
            }
            Ok(out)
        })
        .await
        .map_err(|e| format!("listing pending records: {e}"))?
    }

    async fn mark_saved(&self, pv_name: &str) -> Result<(), String> {
        // One unlink per root: cheap enough for the worker's own thread.
        for root in self.roots.current().roots() {
            root.mark_saved(pv_name)
                .map_err(|e| format!("{}: {e}", root.path().display()))?;
        }
        Ok(())
    }

    async fn discard(&self, volume: &PendingVolume) -> Result<(), DeleteError> {
        let roots: Vec<Arc<Root>> = self.roots.current().roots().cloned().collect();
        let (pv, uid) = (volume.pv_name.clone(), volume.claim_uid.clone());
        tokio::task::spawn_blocking(move || {
            for root in roots {
                let done = root
                    .discard_pending(&pv, &uid)
                    .map_err(|e| DeleteError::Failed(e.to_string()))?;
                if done == Discarded::Done(Deleted::Removed) {
                    quota::free_project(&Self::projects_dir(root.path()), root.path(), &pv)
                        .map_err(|e| DeleteError::Failed(e.to_string()))?;
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| DeleteError::Failed(format!("discard task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn claim(modes: &[&str], request: Option<&str>) -> PersistentVolumeClaim {
        let c = external_storage::fixtures::claim("default", "c").access_modes(modes);
        match request {
            Some(r) => c.request(r),
            None => c,
        }
        .build()
    }

    #[test]
    fn only_single_node_access_modes_and_no_selectors() {
        assert!(check_claim(&claim(&["ReadWriteOnce"], None)).is_ok());
        assert!(check_claim(&claim(&["ReadWriteOncePod"], None)).is_ok());
        let e = check_claim(&claim(&["ReadWriteMany"], None)).unwrap_err();
        assert!(
            matches!(&e, UnsupportedClaim::AccessMode { mode, .. } if mode == "ReadWriteMany"),
            "{e}"
        );
        assert!(
            e.to_string().contains("ReadWriteMany is not supported"),
            "{e}"
        );
        let mut c = claim(&["ReadWriteOnce"], None);
        c.spec.as_mut().unwrap().selector = Some(LabelSelector::default());
        assert_eq!(check_claim(&c), Err(UnsupportedClaim::Selector));
    }

    #[test]
    fn spec_has_source_and_node_affinity_and_round_trips_the_path() {
        let spec = volume_spec(VolumeType::HostPath, Path::new("/r/ns/c"), "n1");
        assert_eq!(spec.host_path.as_ref().unwrap().path, "/r/ns/c");
        let pv = PersistentVolume {
            spec: Some(spec),
            ..Default::default()
        };
        let term = e2e_support::first_affinity_term(&pv);
        let req = &term.match_expressions.as_ref().unwrap()[0];
        assert_eq!(req.key, HOSTNAME_LABEL);
        assert_eq!(req.values.as_deref(), Some(&["n1".to_string()][..]));
        assert_eq!(relative_path(&pv, Path::new("/r")).as_deref(), Some("ns/c"));
        assert_eq!(relative_path(&pv, Path::new("/other")), None);

        let local = volume_spec(VolumeType::Local, Path::new("/r/x"), "n1");
        assert!(local.host_path.is_none());
        assert_eq!(local.local.unwrap().path, "/r/x");
    }
}
