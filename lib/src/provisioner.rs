//! The one trait a provisioner implements, and the values that cross it.
//!
//! Everything Kubernetes-specific (watching, deciding, retrying, writing PVs,
//! events, leader election) stays in the controller; a provisioner only makes
//! and removes backend volumes. Outcomes are typed so that the controller, not
//! the provisioner, decides what each one means for retries and events.

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, TypedObjectReference,
};
use k8s_openapi::api::storage::v1::StorageClass;

/// What the controller passes to [`Provisioner::provision`].
///
/// For one claim the options are stable across calls (same `pv_name`, same
/// class), so a provisioner can and must be idempotent: a second call for the
/// same `pv_name` returns the volume made by the first one.
#[derive(Clone, Debug)]
pub struct ProvisionOptions {
    /// The claim's StorageClass (its `parameters`, `mountOptions`, ...).
    pub storage_class: StorageClass,
    /// The claim to provision for.
    pub claim: PersistentVolumeClaim,
    /// The name the PV will get (`pvc-<claim uid>` unless overridden);
    /// deterministic, so use it as the backend volume's identity.
    pub pv_name: String,
    /// `volume.kubernetes.io/selected-node` of the claim, if any: the node a
    /// `WaitForFirstConsumer` claim's pod was scheduled to.
    pub selected_node: Option<String>,
    /// The `kubernetes.io/hostname` label of that node, when the controller
    /// knows it (node-local mode: its own node). Write PV node affinity
    /// with this, not the name: the scheduler and the kubelet match labels.
    pub node_hostname: Option<String>,
}

/// What a successful [`Provisioner::provision`] returns: the parts of the PV
/// only the provisioner knows.
///
/// The controller fills in everything else: name, `claimRef`, storage class,
/// reclaim policy, `provisioned-by`; and, when left empty here, volume mode
/// and access modes (the claim's), capacity (the claim's request) and mount
/// options (the class's, only for volume sources the kubelet mounts with
/// options: not `hostPath` or `flexVolume`; see
/// [`takes_mount_options`](crate::controller::pv::takes_mount_options)).
///
/// The result must fit the claim, or the PV controller never binds it:
/// capacity at least the request, the claim's volume mode, access modes
/// including all of the claim's. A result that does not fit (and a PV the
/// API server refuses as invalid) is not saved: the controller deletes the
/// backend volume, says why in a Warning event, and does not try again
/// until the claim changes.
#[derive(Clone, Debug, Default)]
pub struct Provisioned {
    /// A PV spec fragment with the volume source (`hostPath`, `local`, `nfs`,
    /// `flexVolume`, `csi`, ...) and optionally `capacity`, `accessModes`,
    /// `volumeMode`, `mountOptions` and `nodeAffinity`. `claimRef`,
    /// `storageClassName` and `persistentVolumeReclaimPolicy` are
    /// overwritten.
    pub spec: PersistentVolumeSpec,
    /// Extra annotations for the PV (e.g. an identity the provisioner checks
    /// again at delete time).
    pub annotations: BTreeMap<String, String>,
    /// Extra labels for the PV.
    pub labels: BTreeMap<String, String>,
}

impl Provisioned {
    /// A result with this PV spec fragment and no extra metadata.
    pub fn new(spec: PersistentVolumeSpec) -> Self {
        Self {
            spec,
            ..Self::default()
        }
    }
}

/// Why [`Provisioner::provision`] did not return a volume. Each variant is a
/// promise about the backend state and selects a retry behaviour.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisionError {
    /// The attempt failed and left no backend volume behind. Retried with
    /// per-claim exponential backoff, up to `--failed-provision-threshold`
    /// attempts; a `ProvisioningFailed` event carries the message, so say what
    /// to fix.
    #[error("{0}")]
    Failed(String),
    /// The volume is being made in the background: the controller calls
    /// `provision` again, with the same options, after a backoff. A backend
    /// volume may exist.
    #[error("provisioning in progress: {0}")]
    InProgress(String),
    /// The volume cannot be made on the selected node; no backend volume
    /// exists. The controller removes `volume.kubernetes.io/selected-node` so
    /// the scheduler picks again. Only meaningful with a selected node.
    #[error("reschedule: {0}")]
    Reschedule(String),
    /// The claim is not for this provisioner after all: no event, no retry,
    /// no backend volume.
    #[error("ignored: {0}")]
    Ignored(String),
    /// The request cannot be satisfied as it stands (bad class parameters, no
    /// capacity anywhere); no backend volume exists. Retried slowly (the
    /// controller's infeasible interval) and never counted against the
    /// failure threshold.
    #[error("infeasible: {0}")]
    Infeasible(String),
}

/// Bad class parameters cannot be fixed by retrying soon: infeasible.
impl From<crate::params::ParamError> for ProvisionError {
    fn from(e: crate::params::ParamError) -> Self {
        ProvisionError::Infeasible(e.to_string())
    }
}

/// A request that is not a size stays so until the claim changes: infeasible.
impl From<crate::params::QuantityError> for ProvisionError {
    fn from(e: crate::params::QuantityError) -> Self {
        ProvisionError::Infeasible(e.to_string())
    }
}

/// A claim the provisioner cannot serve as written: infeasible.
impl From<crate::params::UnsupportedClaim> for ProvisionError {
    fn from(e: crate::params::UnsupportedClaim) -> Self {
        ProvisionError::Infeasible(e.to_string())
    }
}

/// Why [`Provisioner::delete`] did not delete the backend volume.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeleteError {
    /// Deletion failed; retried with per-volume backoff up to
    /// `--failed-delete-threshold`, with a `VolumeFailedDelete` event.
    #[error("{0}")]
    Failed(String),
    /// Deletion continues in the background; `delete` is called again after
    /// a backoff and the PV is kept until it returns `Ok`.
    #[error("deletion in progress: {0}")]
    InProgress(String),
    /// This PV is not ours to delete (e.g. another instance's identity): it is
    /// left alone, with no event and no retry.
    #[error("ignored: {0}")]
    Ignored(String),
}

/// A backend volume whose PV may not be saved yet, as the backend's own
/// intent record describes it ([`IntentRecords::pending`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingVolume {
    /// The PV name the volume was made for (its identity).
    pub pv_name: String,
    /// The claim it was made for: namespace, name and UID.
    pub claim_namespace: String,
    /// See `claim_namespace`.
    pub claim_name: String,
    /// See `claim_namespace`; the sweep compares it with the live claim's.
    pub claim_uid: String,
    /// When the record was last written (each `provision` call rewrites
    /// it): the sweep waits out its grace period from here.
    pub recorded_at: std::time::SystemTime,
}

/// Optional capability ([`Provisioner::intent_records`]): the backend
/// itself records, durably and before the volume exists, that a volume is
/// being made for a claim (state *pending*), and marks the record *saved*
/// once its PV exists.
///
/// A provisioner that offers this spares every claim the two intent
/// finalizer patches: the controller then relies on these records instead,
/// and a sweep removes a pending volume whose PV was never saved, once its
/// claim is gone (see `controller/intent_sweep.rs` for the rules). The
/// contract:
/// - `provision` writes (or rewrites) the pending record, with the claim's
///   namespace, name and UID, before it makes anything;
/// - `delete` of the volume also removes its pending record;
/// - [`discard`](Self::discard) removes a still-pending volume, through the
///   same ownership checks as `delete`, and nothing that is not pending for
///   that claim UID.
#[async_trait]
pub trait IntentRecords: Send + Sync {
    /// Every volume whose record is still pending.
    async fn pending(&self) -> Result<Vec<PendingVolume>, String>;
    /// The PV of `pv_name` is saved: mark its record so (idempotent; the
    /// sweep retries a mark that failed).
    async fn mark_saved(&self, pv_name: &str) -> Result<(), String>;
    /// Remove the pending volume `volume` and its record, only if the record
    /// is still pending for `volume.claim_uid`.
    async fn discard(&self, volume: &PendingVolume) -> Result<(), DeleteError>;
}

/// A storage provisioner: makes and removes backend volumes.
///
/// Both operations must be idempotent: `provision` for a `pv_name` whose
/// volume already exists returns it; `delete` of a volume that is already gone
/// returns `Ok(())`. The controller relies on this to recover from crashes and
/// lost API writes without leaking volumes.
#[async_trait]
pub trait Provisioner: Send + Sync + 'static {
    /// Make (or find again) the backend volume for `opts.pv_name`.
    async fn provision(&self, opts: ProvisionOptions) -> Result<Provisioned, ProvisionError>;

    /// Remove the backend volume of `pv`. Called for `Released` PVs with
    /// policy `Delete`, and for volumes whose PV could not be saved or whose
    /// claim was deleted while they were being made (then `pv` was built but
    /// never stored).
    async fn delete(&self, pv: &PersistentVolume) -> Result<(), DeleteError>;

    /// Qualifier: return `false` to leave a claim that passed the generic
    /// checks alone (no event, no retry until the claim changes).
    fn should_provision(&self, _claim: &PersistentVolumeClaim, _class: &StorageClass) -> bool {
        true
    }

    /// Guard: return `false` to keep a `Released` PV (and its backend volume).
    fn should_delete(&self, _pv: &PersistentVolume) -> bool {
        true
    }

    /// Whether `volumeMode: Block` claims can be served. When `false` such
    /// claims get a Warning event and no volume.
    fn supports_block(&self) -> bool {
        false
    }

    /// Whether a claim with this data source (`spec.dataSourceRef`, else
    /// `spec.dataSource`: a PersistentVolumeClaim to clone, a
    /// VolumeSnapshot to restore, ...) can be served: the provisioner fills
    /// the new volume from it (the source is in `ProvisionOptions::claim`).
    /// When `false` (the default), such claims get a Warning event and no
    /// volume, instead of an empty volume where data was asked for.
    fn supports_data_source(&self, _source: &TypedObjectReference) -> bool {
        false
    }

    /// The backend's intent records, if it keeps them ([`IntentRecords`]).
    /// `None` (the default): the controller records intent on the claim
    /// with the finalizer `external-storage.io/provisioning`.
    fn intent_records(&self) -> Option<&dyn IntentRecords> {
        None
    }

    /// Grow the backend volume of `pv` to at least `bytes`. Called when a
    /// bound claim of a class with `allowVolumeExpansion: true` requests more
    /// than its PV's capacity; on `Ok` the controller raises the PV's capacity
    /// and the claim's `status.capacity` to the request. The default refuses,
    /// which gives the claim a Warning event and changes nothing.
    async fn expand(&self, _pv: &PersistentVolume, _bytes: u64) -> Result<(), ProvisionError> {
        Err(ProvisionError::Infeasible(
            "this provisioner cannot expand volumes".into(),
        ))
    }
}

/// A shared provisioner is a provisioner: keep an `Arc` to inspect or
/// reconfigure it while the controller runs.
#[async_trait]
impl<P: Provisioner + ?Sized> Provisioner for std::sync::Arc<P> {
    async fn provision(&self, opts: ProvisionOptions) -> Result<Provisioned, ProvisionError> {
        (**self).provision(opts).await
    }
    async fn delete(&self, pv: &PersistentVolume) -> Result<(), DeleteError> {
        (**self).delete(pv).await
    }
    fn should_provision(&self, claim: &PersistentVolumeClaim, class: &StorageClass) -> bool {
        (**self).should_provision(claim, class)
    }
    fn should_delete(&self, pv: &PersistentVolume) -> bool {
        (**self).should_delete(pv)
    }
    fn supports_block(&self) -> bool {
        (**self).supports_block()
    }
    fn supports_data_source(&self, source: &TypedObjectReference) -> bool {
        (**self).supports_data_source(source)
    }
    async fn expand(&self, pv: &PersistentVolume, bytes: u64) -> Result<(), ProvisionError> {
        (**self).expand(pv, bytes).await
    }
    fn intent_records(&self) -> Option<&dyn IntentRecords> {
        (**self).intent_records()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every optional method with the opposite of the trait's
    /// default, so a forwarding impl that fell back to a default shows.
    struct Contrary;

    #[async_trait]
    impl Provisioner for Contrary {
        async fn provision(&self, _: ProvisionOptions) -> Result<Provisioned, ProvisionError> {
            Err(ProvisionError::Failed("contrary provision".into()))
        }
        async fn delete(&self, _: &PersistentVolume) -> Result<(), DeleteError> {
            Err(DeleteError::Failed("contrary delete".into()))
        }
        fn should_provision(&self, _: &PersistentVolumeClaim, _: &StorageClass) -> bool {
            false
        }
        fn should_delete(&self, _: &PersistentVolume) -> bool {
            false
        }
        fn supports_block(&self) -> bool {
            true
        }
        fn supports_data_source(&self, _: &TypedObjectReference) -> bool {
            true
        }
        async fn expand(&self, _: &PersistentVolume, bytes: u64) -> Result<(), ProvisionError> {
            Err(ProvisionError::Failed(format!("contrary expand {bytes}")))
        }
        fn intent_records(&self) -> Option<&dyn IntentRecords> {
            Some(self)
        }
    }

    #[async_trait]
    impl IntentRecords for Contrary {
        async fn pending(&self) -> Result<Vec<PendingVolume>, String> {
            Err("contrary pending".into())
        }
        async fn mark_saved(&self, _: &str) -> Result<(), String> {
            Err("contrary mark".into())
        }
        async fn discard(&self, _: &PendingVolume) -> Result<(), DeleteError> {
            Err(DeleteError::Failed("contrary discard".into()))
        }
    }

    /// The trait's defaults, for contrast: each differs from `Contrary`.
    struct Defaults;

    #[async_trait]
    impl Provisioner for Defaults {
        async fn provision(&self, _: ProvisionOptions) -> Result<Provisioned, ProvisionError> {
            Err(ProvisionError::Failed("unused".into()))
        }
        async fn delete(&self, _: &PersistentVolume) -> Result<(), DeleteError> {
            Ok(())
        }
    }

    type Answers = (bool, bool, bool, bool, String, String, bool);

    async fn answers<P: Provisioner>(p: &P) -> Answers {
        let (pv, claim, class) = (
            PersistentVolume::default(),
            PersistentVolumeClaim::default(),
            StorageClass::default(),
        );
        let source = TypedObjectReference::default();
        (
            p.should_provision(&claim, &class),
            p.should_delete(&pv),
            p.supports_block(),
            p.supports_data_source(&source),
            format!("{:?}", p.expand(&pv, 7).await),
            format!("{:?}", p.delete(&pv).await),
            p.intent_records().is_some(),
        )
    }

    #[tokio::test]
    async fn a_shared_provisioner_forwards_every_method() {
        let direct = answers(&Contrary).await;
        let defaults = answers(&Defaults).await;
        // Every answer differs from the default, so forwarding is visible.
        assert!(
            direct.0 != defaults.0
                && direct.1 != defaults.1
                && direct.2 != defaults.2
                && direct.3 != defaults.3
                && direct.4 != defaults.4
                && direct.5 != defaults.5
                && direct.6 != defaults.6,
            "{direct:?} vs {defaults:?}"
        );
        assert!(direct.4.contains("contrary expand 7"), "{}", direct.4);
        assert_eq!(answers(&std::sync::Arc::new(Contrary)).await, direct);
    }
}
