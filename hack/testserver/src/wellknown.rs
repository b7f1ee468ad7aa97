//! Names and fields of Kubernetes objects that several parts of the server
//! read: the protection finalizers (added by admission, removed by the
//! controllers) and the class a claim asks for (admission, binder,
//! scheduler). A module of its own so that admission and the controllers
//! do not import each other.

use serde_json::Value;

/// Finalizer the StorageObjectInUseProtection admission plugin puts on
/// every claim; the pvc-protection controller removes it from a deleted
/// claim once no pod uses it.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// Finalizer the same plugin puts on every PV; the pv-protection controller
/// removes it from a deleted PV that is not Bound.
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

/// Deprecated claim annotation naming the StorageClass; it wins over
/// `spec.storageClassName` (`GetPersistentVolumeClaimClass`).
pub const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// The class a claim asks for, as the real PV controller, scheduler and
/// DefaultStorageClass admission read it: the beta annotation if present,
/// else `spec.storageClassName` ("" for none).
pub fn claim_class(claim: &Value) -> &str {
    claim
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(BETA_STORAGE_CLASS))
        .and_then(Value::as_str)
        .or_else(|| {
            claim
                .pointer("/spec/storageClassName")
                .and_then(Value::as_str)
        })
        .unwrap_or("")
}
