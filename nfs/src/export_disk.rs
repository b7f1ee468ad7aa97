//! The server's own disk is never deleted with its namespace.
//!
//! Every volume's data lives on one claim, the StatefulSet's
//! `export-<pod>`. Its PV usually comes from the cluster's default class,
//! whose reclaim policy is most often Delete: `kubectl delete -f deploy/nfs`
//! (which deletes the namespace, and with it that claim) would then delete
//! the disk and every volume on it. At start the server sets that PV's
//! reclaim policy to Retain and notes what it was, so removing the
//! provisioner leaves a Released PV holding all the data (nfs/README.md,
//! "Uninstalling"). Nothing else about the claim or the PV changes.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

/// PV annotation on the export disk: the reclaim policy it had before the
/// server set Retain.
pub const ANNOTATION_PREVIOUS_POLICY: &str =
    "external-storage.io/nfs-export-disk-reclaim-policy-was";

/// What [`retain`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The PV's policy was `was`; it is Retain now.
    Retained {
        /// The export disk's PV.
        pv: String,
        /// Its policy before.
        was: String,
    },
    /// The PV was Retain already.
    AlreadyRetained {
        /// The export disk's PV.
        pv: String,
    },
}

/// Why the export disk could not be made Retain.
#[derive(Debug, thiserror::Error)]
pub enum RetainError {
    /// The claim does not exist or is not bound: the export root is not
    /// this claim (a hostPath, or another claim name).
    #[error(
        "claim {namespace}/{claim} holds no bound volume (is the export root on another volume?)"
    )]
    NotBound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        claim: String,
    },
    /// An API call failed (RBAC: get persistentvolumeclaims, get and patch
    /// persistentvolumes).
    #[error("{what}: {source}")]
    Api {
        /// The call.
        what: String,
        /// The API's error.
        #[source]
        source: kube::Error,
    },
}

/// Sets the reclaim policy of the PV bound to `namespace/claim` to Retain.
pub async fn retain(client: &Client, namespace: &str, claim: &str) -> Result<Outcome, RetainError> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let not_bound = || RetainError::NotBound {
        namespace: namespace.to_string(),
        claim: claim.to_string(),
    };
    let found = claims
        .get_opt(claim)
        .await
        .map_err(|source| RetainError::Api {
            what: format!("reading claim {namespace}/{claim}"),
            source,
        })?;
    let pv_name = found
        .and_then(|c| c.spec.and_then(|s| s.volume_name))
        .filter(|n| !n.is_empty())
        .ok_or_else(not_bound)?;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pv = pvs.get(&pv_name).await.map_err(|source| RetainError::Api {
        what: format!("reading PV {pv_name}"),
        source,
    })?;
    let was = pv
        .spec
        .and_then(|s| s.persistent_volume_reclaim_policy)
        .unwrap_or_else(|| "Delete".to_string());
    if was == "Retain" {
        return Ok(Outcome::AlreadyRetained { pv: pv_name });
    }
    let patch = json!({
        "metadata": {"annotations": {ANNOTATION_PREVIOUS_POLICY: was}},
        "spec": {"persistentVolumeReclaimPolicy": "Retain"},
    });
    pvs.patch(&pv_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| RetainError::Api {
            what: format!("setting PV {pv_name}'s reclaim policy to Retain"),
            source,
        })?;
    Ok(Outcome::Retained { pv: pv_name, was })
}
