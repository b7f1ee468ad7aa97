//! Every annotation, label and finalizer string the library reads or writes.
//!
//! They live here, documented once, so that a reader can audit the whole
//! contract with the Kubernetes API (and with the in-tree PV controller) in
//! one place, and so no other module spells a key by hand.

/// Claim annotation set by the PV controller (and `kube-scheduler`) naming the
/// provisioner that must provision the claim. The controller takes a claim
/// only when this names its provisioner name or one of its additional names.
pub const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";

/// Deprecated beta spelling of [`STORAGE_PROVISIONER`]; read only when the GA
/// annotation is absent.
pub const BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";

/// Deprecated claim annotation naming the StorageClass. When present it takes
/// precedence over `spec.storageClassName`, like in the PV controller.
pub const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// Claim annotation set by the scheduler for `WaitForFirstConsumer` classes:
/// the node the consuming pod will run on. Passed to the provisioner, and
/// removed again when the provisioner asks to reschedule.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

/// PV annotation naming the provisioner (the class's `provisioner`) that made
/// the volume. Only PVs carrying one of our names are ever deleted.
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";

/// PV annotation set by CSI migration; a PV migrated to one of our names is
/// treated as ours, like [`PROVISIONED_BY`].
pub const MIGRATED_TO: &str = "pv.kubernetes.io/migrated-to";

/// Optional PV finalizer (`--add-finalizer`): while present, deleting the PV
/// object cannot drop the backend volume on the floor; the controller removes
/// it after the backend volume is deleted (or when the PV's policy is not
/// `Delete`).
pub const PV_FINALIZER: &str = "external-provisioner.volume.kubernetes.io/finalizer";

/// Claim finalizer recording the *intent* to provision: added (by PATCH)
/// before the provisioner is called and removed once the PV is saved or the
/// backend volume is known to be gone. It is what makes provisioning
/// leak-proof across claim deletion and controller restarts; see
/// [`crate::controller`] for the protocol.
pub const PROVISIONING_FINALIZER: &str = "external-storage.io/provisioning";

/// Claim finalizer the apiserver's StorageObjectInUseProtection admission
/// puts on every claim; kube-controller-manager lifts it once no pod uses
/// the claim. Not ours: never added or removed by this library.
pub const PVC_PROTECTION_FINALIZER: &str = "kubernetes.io/pvc-protection";

/// PV finalizer of the same admission plugin; lifted once the PV is no
/// longer bound to a live claim. Not ours either.
pub const PV_PROTECTION_FINALIZER: &str = "kubernetes.io/pv-protection";

/// Annotation on a PV: what its provisioner does with the data when the PV
/// is deleted (`delete`, `retain` or `archive`; see [`crate::ondelete`]).
/// Written at provisioning from the class's `onDelete`, so a later change
/// of the class never changes what happens to volumes that exist.
pub const ON_DELETE: &str = "external-storage.io/on-delete";

/// Annotation on a PV with `archive` [`ON_DELETE`]: how long its archive is
/// kept before the provisioner removes it (the class's `archiveRetention`).
pub const ARCHIVE_RETENTION: &str = "external-storage.io/archive-retention";

/// Well-known node label used by node-local provisioners in node affinity.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// Name of the `WaitForFirstConsumer` volume binding mode of a StorageClass.
pub const WAIT_FOR_FIRST_CONSUMER: &str = "WaitForFirstConsumer";

/// The JSON pointer (RFC 6901) of annotation `key` inside an object, for
/// JSON patches: `~` and `/` in the key are escaped as `~0` and `~1`.
pub fn annotation_pointer(key: &str) -> String {
    format!(
        "/metadata/annotations/{}",
        key.replace('~', "~0").replace('/', "~1")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_pointers_escape_slash_and_tilde() {
        assert_eq!(
            annotation_pointer(SELECTED_NODE),
            "/metadata/annotations/volume.kubernetes.io~1selected-node"
        );
        assert_eq!(annotation_pointer("a~b/c"), "/metadata/annotations/a~0b~1c");
    }
}
