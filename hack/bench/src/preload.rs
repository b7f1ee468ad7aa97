//! Bound claims and their PVs written straight into the test server's store
//! (no HTTP, not counted), so a provisioner can be started against N
//! objects of each kind and its memory measured with them all cached,
//! without waiting for N provisionings first.

use kube_testserver::registry::id;
use kube_testserver::Store;
use serde_json::json;

/// Writes `n` Bound claims `pre-<i>` of `class` and their Bound PVs
/// `pvc-pre-<i>` (provisioned by `provisioner`, hostPath source, node
/// affinity to `node`), shaped like the ones the hostpath provisioner makes.
pub fn bound_pairs(
    store: &Store,
    n: usize,
    class: &str,
    provisioner: &str,
    node: &str,
) -> anyhow::Result<()> {
    for i in 0..n {
        let claim = format!("pre-{i:05}");
        let pv = format!("pvc-pre-{i:05}");
        let created = store
            .create(
                id("", "persistentvolumeclaims"),
                json!({
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": claim, "namespace": "default", "annotations": {
                        "volume.kubernetes.io/storage-provisioner": provisioner,
                        "volume.kubernetes.io/selected-node": node,
                        "pv.kubernetes.io/bind-completed": "yes",
                    }},
                    "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
                             "resources": {"requests": {"storage": "1Gi"}}, "volumeName": pv},
                    "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}},
                }),
            )
            .map_err(|e| anyhow::anyhow!("preloading claim {claim}: {e:?}"))?;
        let uid = created
            .pointer("/metadata/uid")
            .cloned()
            .unwrap_or_default();
        store
            .create(
                id("", "persistentvolumes"),
                json!({
                    "apiVersion": "v1", "kind": "PersistentVolume",
                    "metadata": {"name": pv, "annotations": {
                        "pv.kubernetes.io/provisioned-by": provisioner,
                        "hostpath.external-storage.io/path": pv,
                        "hostpath.external-storage.io/node": node,
                    }},
                    "spec": {
                        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Delete", "storageClassName": class,
                        "volumeMode": "Filesystem",
                        "hostPath": {"path": format!("/var/lib/hostpath-provisioner/{pv}"), "type": "DirectoryOrCreate"},
                        "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": "default", "name": claim, "uid": uid},
                        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
                    },
                    "status": {"phase": "Bound"},
                }),
            )
            .map_err(|e| anyhow::anyhow!("preloading PV {pv}: {e:?}"))?;
    }
    Ok(())
}
