//! The [`Provisioner`] implementation: a record, a directory and a live
//! export per claim. On delete the export is withdrawn first (clients never
//! see files vanish under a live export), then the directory, then the
//! record; a crash in between leaves the record, so the next attempt (after
//! a restart re-exported it) finishes the job.
//!
//! Every export change runs under the server's lock and only while the
//! server is ready, so it never races the start-up reconcile.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use external_storage::events::{Events, Reason};
use external_storage::ondelete::OnDelete;
use external_storage::params::UnsupportedClaim;
use kube::Resource;

use external_storage::{
    async_trait, DeleteError, IntentRecords, PendingVolume, PersistentVolume, ProvisionError,
    ProvisionOptions, Provisioned, Provisioner,
};
use hostfs::intent::Claimant;
use hostfs::quota::{self, ProjectQuotas};
use k8s_openapi::api::core::v1::{NFSVolumeSource, PersistentVolumeClaim, PersistentVolumeSpec};

use crate::exports::{self, ExportRoot, RootError, STATE_DIR};
use crate::ganesha::ExportRecord;
use crate::params::{ClassParams, GidPolicy};
use crate::server::Server;
use crate::{EXPORT_ID_ANNOTATION, GID_ANNOTATION, IDENTITY_ANNOTATION};

/// Makes and deletes exported directories on the export root.
pub struct Nfs {
    root: Arc<ExportRoot>,
    server: Arc<Server>,
    identity: String,
    address: String,
    events: Option<Events>,
}

/// Why a claim cannot be served (pure): any access mode works over NFS, a
/// selector does not.
pub fn check_claim(claim: &PersistentVolumeClaim) -> Result<(), UnsupportedClaim> {
    external_storage::params::reject_selector(claim)
}

/// Where the quota project id of each `enforceCapacity` volume is recorded
/// (under the export root's state directory, never exported).
pub fn projects_dir(root: &std::path::Path) -> std::path::PathBuf {
    root.join(STATE_DIR).join("projects")
}

/// The PV spec fragment of an export.
pub fn volume_spec(server: &str, path: &str) -> PersistentVolumeSpec {
    PersistentVolumeSpec {
        nfs: Some(NFSVolumeSource {
            server: server.to_string(),
            path: path.to_string(),
            read_only: None,
        }),
        ..Default::default()
    }
}

/// Whether `pv` carries `identity` (pure): only those are ours to delete.
pub fn has_identity(pv: &PersistentVolume, identity: &str) -> bool {
    pv.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(IDENTITY_ANNOTATION))
        .is_some_and(|v| v == identity)
}

/// No export id or GID left for a new volume.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Exhausted {
    /// Every export id Ganesha allows is taken.
    #[error("all 65533 export ids are in use on this server")]
    ExportIds,
    /// Every GID of the class's range is taken.
    #[error("no free GID left in gidMin-gidMax ({min}-{max}): widen the range")]
    Gids {
        /// The class's `gidMin`.
        min: u32,
        /// The class's `gidMax`.
        max: u32,
    },
}

/// The record for a new volume: lowest free export id and, if asked for,
/// GID, given the existing records (pure).
pub fn new_record<'a>(
    root: &ExportRoot,
    pv: &str,
    params: &ClassParams,
    existing: impl IntoIterator<Item = &'a ExportRecord> + Clone,
) -> Result<ExportRecord, Exhausted> {
    let ids: BTreeSet<u16> = existing.clone().into_iter().map(|r| r.export_id).collect();
    let export_id = exports::lowest_free_export_id(&ids).ok_or(Exhausted::ExportIds)?;
    let gid = match params.gid {
        GidPolicy::None => None,
        GidPolicy::Fixed(g) => Some(g),
        GidPolicy::Allocate { min, max } => {
            let used: BTreeSet<u32> = existing.into_iter().filter_map(|r| r.gid).collect();
            Some(exports::lowest_free_gid(&used, min, max).ok_or(Exhausted::Gids { min, max })?)
        }
    };
    Ok(ExportRecord {
        pv: pv.to_string(),
        export_id,
        path: root.volume_path(pv),
        root_squash: params.root_squash,
        gid,
    })
}

impl Nfs {
    /// A provisioner serving `root` through `server`, writing `address` and
    /// `identity` into its PVs; archive and retain outcomes become events
    /// through `events` (without, they are only logged).
    pub fn new(
        root: Arc<ExportRoot>,
        server: Arc<Server>,
        identity: String,
        address: String,
        events: Option<Events>,
    ) -> Self {
        Nfs {
            root,
            server,
            identity,
            address,
            events,
        }
    }

    /// The retention sweep of this export root (blocking): removes the
    /// archives it recorded whose `archiveRetention` has passed, frees
    /// their quota ids, returns their names.
    pub fn sweep_archives(&self) -> Result<Vec<String>, hostfs::archive::SweepError> {
        let projects = self.projects_dir();
        let archives = self.root.archives();
        hostfs::archive::sweep(archives, self.root.path(), &projects, SystemTime::now())
    }

    async fn publish(&self, pv: &PersistentVolume, reason: Reason, note: String) {
        tracing::info!(pv = ?pv.metadata.name, "{note}");
        if let Some(events) = &self.events {
            events.publish(&pv.object_ref(&()), reason, note).await;
        }
    }

    fn projects_dir(&self) -> std::path::PathBuf {
        projects_dir(self.root.path())
    }

    /// The outcome of a failure after our directory exists: a first attempt
    /// is rolled back and `Failed` (nothing left behind, as the library
    /// expects); a retry of an earlier attempt may hold data, so it stays
    /// and the claim is retried (`InProgress`).
    async fn failed_after(
        &self,
        mgr: &crate::dbus::ExportMgr,
        r: &ExportRecord,
        fresh: bool,
        why: String,
    ) -> ProvisionError {
        if fresh {
            self.roll_back(mgr, r).await;
            ProvisionError::Failed(why)
        } else {
            ProvisionError::InProgress(why)
        }
    }

    /// Withdraws what a failed first attempt made (export, directory, record).
    async fn roll_back(&self, mgr: &crate::dbus::ExportMgr, r: &ExportRecord) {
        if let Err(e) = mgr.remove_export(r.export_id).await {
            tracing::error!(pv = r.pv, error = %e, "roll back: withdrawing the export failed");
            return;
        }
        if let Err(e) = self
            .root
            .remove_volume_dir(&r.pv)
            .and_then(|()| self.root.remove_record(&r.pv))
        {
            tracing::error!(pv = r.pv, error = %e, "roll back: removing the directory failed");
        }
    }
}

#[async_trait]
impl Provisioner for Nfs {
    async fn provision(&self, opts: ProvisionOptions) -> Result<Provisioned, ProvisionError> {
        let params = ClassParams::parse(opts.storage_class.parameters.as_ref())?;
        check_claim(&opts.claim)?;
        let quota = if params.enforce_capacity {
            let bytes = external_storage::params::storage_request(&opts.claim)?
                .map(|(_, bytes)| bytes)
                .ok_or_else(|| {
                    ProvisionError::Infeasible(
                        "enforceCapacity is on but the claim requests no storage".into(),
                    )
                })?;
            let q = ProjectQuotas::detect(self.root.path()).map_err(|e| {
                ProvisionError::Infeasible(format!("StorageClass parameter `enforceCapacity`: {e}"))
            })?;
            Some((q, bytes))
        } else {
            None
        };
        let failed = |e: &dyn std::fmt::Display| ProvisionError::Failed(e.to_string());
        let mgr = self.server.export_mgr().map_err(|e| failed(&e))?;
        let _guard = self.server.lock().await;
        let pv = opts.pv_name.as_str();
        // The intent first: a crash after this leaves a record the
        // controller's intent sweep reads (`hostfs::intent`).
        let m = &opts.claim.metadata;
        let claimant = Claimant {
            namespace: m.namespace.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
        };
        self.root
            .pending_records()
            .record(pv, &claimant)
            .map_err(|e| failed(&e))?;
        let (record, fresh) = match self.root.record(pv).map_err(|e| failed(&e))? {
            Some(r) => (r, false),
            None => {
                let (r, damaged) = self
                    .root
                    .with_records(|existing| new_record(&self.root, pv, &params, existing))
                    .map_err(|e| failed(&e))?;
                if let Some(e) = damaged.first() {
                    // A damaged record may hold an id or GID in use.
                    return Err(failed(&format!("cannot allocate safely: {e}")));
                }
                let r = r.map_err(|e| ProvisionError::Infeasible(e.to_string()))?;
                self.root.write_record(&r).map_err(|e| failed(&e))?;
                (r, true)
            }
        };
        let dir = match self.root.create_volume_dir(pv, record.gid, fresh) {
            Ok(dir) => dir,
            // Someone else's directory (or a symlink) is in the way: it was
            // there before us, so only our fresh record goes.
            Err(e @ (RootError::Taken(_) | RootError::NotADirectory(_))) => {
                if fresh {
                    let _ = self.root.remove_record(pv);
                }
                return Err(ProvisionError::Failed(e.to_string()));
            }
            Err(e) => return Err(self.failed_after(&mgr, &record, fresh, e.to_string()).await),
        };
        let exported = async {
            if let Some((q, bytes)) = &quota {
                let project = quota::project_id(&self.projects_dir(), self.root.path(), pv)
                    .map_err(|e| e.to_string())?;
                q.set_limit(&dir, project, *bytes)
                    .map_err(|e| e.to_string())?;
            }
            mgr.add_export(&self.root.record_path(pv), &record.path)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match exported {
            Ok(added) => tracing::info!(pv, export_id = record.export_id, added, "exported"),
            Err(e) => return Err(self.failed_after(&mgr, &record, fresh, e).await),
        }
        let mut out = Provisioned::new(volume_spec(&self.address, &record.path));
        out.annotations = BTreeMap::from([
            (IDENTITY_ANNOTATION.to_string(), self.identity.clone()),
            (
                EXPORT_ID_ANNOTATION.to_string(),
                record.export_id.to_string(),
            ),
        ]);
        if let Some(gid) = record.gid {
            out.annotations
                .insert(GID_ANNOTATION.to_string(), gid.to_string());
        }
        out.annotations.extend(params.on_delete.annotations());
        Ok(out)
    }

    async fn delete(&self, pv: &PersistentVolume) -> Result<(), DeleteError> {
        let name = pv.metadata.name.clone().unwrap_or_default();
        if !has_identity(pv, &self.identity) {
            return Err(DeleteError::Ignored(format!(
                "{name} was made by another nfs-provisioner instance (identity annotation differs)"
            )));
        }
        let failed = |e: &dyn std::fmt::Display| DeleteError::Failed(e.to_string());
        let mgr = self.server.export_mgr().map_err(|e| failed(&e))?;
        let _guard = self.server.lock().await;
        let Some(record) = self.root.record(&name).map_err(|e| failed(&e))? else {
            tracing::warn!(
                pv = name,
                "no export record for this PV: nothing of ours to delete"
            );
            self.root
                .pending_records()
                .clear(&name)
                .map_err(|e| failed(&e))?;
            return Ok(());
        };
        let pv_path = pv
            .spec
            .as_ref()
            .and_then(|s| s.nfs.as_ref())
            .map(|n| n.path.as_str());
        if pv_path != Some(record.path.as_str()) {
            return Err(DeleteError::Failed(format!(
                "{name} points at {pv_path:?} but its export is {}; nothing was deleted: check the PV",
                record.path
            )));
        }
        // The policy recorded on the PV at provisioning; a damaged one
        // deletes nothing.
        let on_delete = OnDelete::from_pv(pv).map_err(|e| DeleteError::Failed(e.to_string()))?;
        let removed = mgr
            .remove_export(record.export_id)
            .await
            .map_err(|e| failed(&e))?;
        tracing::info!(
            pv = name,
            export_id = record.export_id,
            removed,
            "export withdrawn"
        );
        // An archived or retained directory keeps its quota project id (its
        // files carry it): the id is freed only when the data is gone.
        let event = match on_delete {
            OnDelete::Delete => {
                self.root.remove_volume_dir(&name).map_err(|e| failed(&e))?;
                quota::free_project(&self.projects_dir(), self.root.path(), &name)
                    .map_err(|e| failed(&e))?;
                tracing::info!(pv = name, "data removed");
                None
            }
            OnDelete::Retain => Some((
                Reason::VolumeRetained,
                format!(
                    "the data was retained at {} on the NFS server's disk (no longer exported); \
                     remove it by hand when it is no longer needed",
                    record.path
                ),
            )),
            OnDelete::Archive { retention } => {
                let archived = self
                    .root
                    .archive_volume_dir(&name, SystemTime::now(), retention)
                    .map_err(|e| failed(&e))?;
                archived.map(|rec| {
                    let at = self.root.path().join(&rec.name);
                    (
                        Reason::VolumeArchived,
                        format!(
                            "the data of {} was archived to {} on the NFS server's disk \
                             (not exported), kept {}",
                            record.path,
                            at.display(),
                            rec.kept()
                        ),
                    )
                })
            }
        };
        self.root.remove_record(&name).map_err(|e| failed(&e))?;
        self.root
            .pending_records()
            .clear(&name)
            .map_err(|e| failed(&e))?;
        if let Some((reason, note)) = event {
            self.publish(pv, reason, note).await;
        }
        Ok(())
    }

    fn should_delete(&self, pv: &PersistentVolume) -> bool {
        has_identity(pv, &self.identity)
    }

    /// Ours are the pending records of the export root (the claim loop then
    /// sends no intent finalizer patches).
    fn intent_records(&self) -> Option<&dyn IntentRecords> {
        Some(self)
    }

    /// Expansion: a volume with a recorded quota project (made by an
    /// `enforceCapacity` class) gets its hard limit raised to `bytes`;
    /// without one the size is nominal (an export has no size of its own),
    /// so only the PV's and the claim's capacity grow, which the library
    /// writes after this returns. Idempotent: setting the same limit twice
    /// is harmless.
    async fn expand(&self, pv: &PersistentVolume, bytes: u64) -> Result<(), ProvisionError> {
        let name = pv.metadata.name.clone().unwrap_or_default();
        if !has_identity(pv, &self.identity) {
            return Err(ProvisionError::Infeasible(format!(
                "{name} was made by another nfs-provisioner instance (identity annotation differs)"
            )));
        }
        let failed = |e: &dyn std::fmt::Display| ProvisionError::Failed(e.to_string());
        let _guard = self.server.lock().await;
        let Some(record) = self.root.record(&name).map_err(|e| failed(&e))? else {
            return Err(ProvisionError::Failed(format!(
                "{name} has no export record on this server: nothing to expand"
            )));
        };
        let Some(project) =
            quota::recorded_project_id(&self.projects_dir(), &name).map_err(|e| failed(&e))?
        else {
            tracing::info!(
                pv = name,
                bytes,
                "no quota on this volume: capacity is nominal"
            );
            return Ok(());
        };
        let q = ProjectQuotas::detect(self.root.path()).map_err(|e| {
            ProvisionError::Infeasible(format!("cannot raise the quota of {name}: {e}"))
        })?;
        q.set_limit(std::path::Path::new(&record.path), project, bytes)
            .map_err(|e| failed(&e))?;
        tracing::info!(pv = name, project, bytes, "quota raised");
        Ok(())
    }
}

/// The export root's pending records (`hostfs::intent`), for the
/// controller's intent sweep.
#[async_trait]
impl IntentRecords for Nfs {
    async fn pending(&self) -> Result<Vec<PendingVolume>, String> {
        let pending = self
            .root
            .pending_records()
            .list()
            .map_err(|e| e.to_string())?;
        Ok(pending
            .into_iter()
            .map(|p| PendingVolume {
                pv_name: p.pv,
                claim_namespace: p.claimant.namespace,
                claim_name: p.claimant.name,
                claim_uid: p.claimant.uid,
                recorded_at: p.recorded_at,
            })
            .collect())
    }

    async fn mark_saved(&self, pv_name: &str) -> Result<(), String> {
        self.root
            .pending_records()
            .clear(pv_name)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Withdraws the export, removes the directory, frees the quota id and
    /// removes the records, all only while the pending record names this
    /// claim UID (checked under the server lock every volume change takes).
    async fn discard(&self, volume: &PendingVolume) -> Result<(), DeleteError> {
        let failed = |e: &dyn std::fmt::Display| DeleteError::Failed(e.to_string());
        let pv = volume.pv_name.as_str();
        let mgr = self.server.export_mgr().map_err(|e| failed(&e))?;
        let _guard = self.server.lock().await;
        let records = self.root.pending_records();
        let Some(pending) = records.read(pv).map_err(|e| failed(&e))? else {
            return Ok(());
        };
        if volume.claim_uid.is_empty() || pending.claimant.uid != volume.claim_uid {
            return Ok(());
        }
        if let Some(record) = self.root.record(pv).map_err(|e| failed(&e))? {
            mgr.remove_export(record.export_id)
                .await
                .map_err(|e| failed(&e))?;
            self.root.remove_volume_dir(pv).map_err(|e| failed(&e))?;
            quota::free_project(&self.projects_dir(), self.root.path(), pv)
                .map_err(|e| failed(&e))?;
            self.root.remove_record(pv).map_err(|e| failed(&e))?;
        }
        records.clear(pv).map_err(|e| failed(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn params(gid: GidPolicy) -> ClassParams {
        ClassParams {
            gid,
            root_squash: true,
            enforce_capacity: false,
            on_delete: OnDelete::Delete,
        }
    }

    fn rec(pv: &str, id: u16, gid: Option<u32>) -> ExportRecord {
        ExportRecord {
            pv: pv.into(),
            export_id: id,
            path: format!("/x/{pv}"),
            root_squash: false,
            gid,
        }
    }

    #[test]
    fn new_records_take_the_lowest_free_id_and_gid() {
        let tmp = tempfile::tempdir().unwrap();
        let root = ExportRoot::open(
            tmp.path(),
            crate::ganesha::ClientList::parse("127.0.0.1").unwrap(),
        )
        .unwrap();
        let existing = [rec("a", 1, Some(5000)), rec("b", 3, None)];
        let r = new_record(
            &root,
            "pvc-c",
            &params(GidPolicy::Allocate {
                min: 5000,
                max: 5001,
            }),
            &existing,
        )
        .unwrap();
        assert_eq!((r.export_id, r.gid, r.root_squash), (2, Some(5001), true));
        assert_eq!(r.path, root.volume_path("pvc-c"));
        let r = new_record(&root, "pvc-c", &params(GidPolicy::None), &existing).unwrap();
        assert_eq!(r.gid, None);
        assert_eq!(
            new_record(&root, "p", &params(GidPolicy::Fixed(7)), &[])
                .unwrap()
                .gid,
            Some(7)
        );
        let full = [rec("a", 1, Some(5000)), rec("b", 2, Some(5001))];
        let e = new_record(
            &root,
            "p",
            &params(GidPolicy::Allocate {
                min: 5000,
                max: 5001,
            }),
            &full,
        )
        .unwrap_err();
        assert_eq!(
            e,
            Exhausted::Gids {
                min: 5000,
                max: 5001
            }
        );
        assert!(e.to_string().contains("widen the range"), "{e}");
    }

    #[test]
    fn identity_guards_deletion() {
        let mut pv = PersistentVolume {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([(
                    IDENTITY_ANNOTATION.to_string(),
                    "me".to_string(),
                )])),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(has_identity(&pv, "me"));
        assert!(!has_identity(&pv, "you"));
        pv.metadata.annotations = None;
        assert!(!has_identity(&pv, "me"));
    }

    #[test]
    fn selectors_are_refused_and_the_spec_is_an_nfs_source() {
        let mut c = PersistentVolumeClaim::default();
        assert!(check_claim(&c).is_ok());
        c.spec = Some(k8s_openapi::api::core::v1::PersistentVolumeClaimSpec {
            selector: Some(LabelSelector::default()),
            ..Default::default()
        });
        assert_eq!(check_claim(&c), Err(UnsupportedClaim::Selector));
        let s = volume_spec("10.0.0.1", "/export/pvc-1");
        let nfs = s.nfs.unwrap();
        assert_eq!(
            (nfs.server.as_str(), nfs.path.as_str()),
            ("10.0.0.1", "/export/pvc-1")
        );
    }
}
