//! Object builders for unit tests: claims, classes and PVs in the shapes the
//! decision rules care about, so each test states only what it varies.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference, PersistentVolume,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeSpec, PersistentVolumeStatus,
    VolumeNodeAffinity, VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ObjectMeta;

use crate::annotations as a;

fn deleting_now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// Builder for a claim.
pub struct ClaimBuilder(PersistentVolumeClaim);

/// A claim `ns/name` with uid `uid-<name>`, RWO, no class, no annotations.
pub fn claim(ns: &str, name: &str) -> ClaimBuilder {
    ClaimBuilder(PersistentVolumeClaim {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            ..Default::default()
        }),
        status: None,
    })
}

impl ClaimBuilder {
    fn ann(mut self, k: &str, v: &str) -> Self {
        self.0
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(k.into(), v.into());
        self
    }
    fn spec(&mut self) -> &mut PersistentVolumeClaimSpec {
        self.0.spec.get_or_insert_with(Default::default)
    }
    /// Set `volume.kubernetes.io/storage-provisioner`.
    pub fn provisioner(self, p: &str) -> Self {
        self.ann(a::STORAGE_PROVISIONER, p)
    }
    /// Set the beta provisioner annotation.
    pub fn beta_provisioner(self, p: &str) -> Self {
        self.ann(a::BETA_STORAGE_PROVISIONER, p)
    }
    /// Set `spec.storageClassName`.
    pub fn class(mut self, c: &str) -> Self {
        self.spec().storage_class_name = Some(c.into());
        self
    }
    /// Set the beta storage-class annotation.
    pub fn beta_class(self, c: &str) -> Self {
        self.ann(a::BETA_STORAGE_CLASS, c)
    }
    /// Set the selected node.
    pub fn selected_node(self, n: &str) -> Self {
        self.ann(a::SELECTED_NODE, n)
    }
    /// Set `spec.volumeName`.
    pub fn volume_name(mut self, v: &str) -> Self {
        self.spec().volume_name = Some(v.into());
        self
    }
    /// `volumeMode: Block`.
    pub fn block(mut self) -> Self {
        self.spec().volume_mode = Some("Block".into());
        self
    }
    /// Set the access modes.
    pub fn access_modes(mut self, modes: &[&str]) -> Self {
        self.spec().access_modes = Some(modes.iter().map(|m| m.to_string()).collect());
        self
    }
    /// Set the uid.
    pub fn uid(mut self, uid: &str) -> Self {
        self.0.metadata.uid = Some(uid.into());
        self
    }
    /// A storage request.
    pub fn request(mut self, q: &str) -> Self {
        self.spec().resources = Some(VolumeResourceRequirements {
            requests: Some([("storage".to_string(), Quantity(q.into()))].into()),
            ..Default::default()
        });
        self
    }
    /// Add a finalizer.
    pub fn finalizer(mut self, f: &str) -> Self {
        self.0
            .metadata
            .finalizers
            .get_or_insert_with(Vec::new)
            .push(f.into());
        self
    }
    /// Set a deletionTimestamp.
    pub fn deleting(mut self) -> Self {
        self.0.metadata.deletion_timestamp = Some(deleting_now());
        self
    }
    /// The claim.
    pub fn build(self) -> PersistentVolumeClaim {
        self.0
    }
}

/// StorageClass `parameters` from `(key, value)` pairs, as a parameter
/// parser receives them.
pub fn parameters(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Builder for a StorageClass.
pub struct ClassBuilder(StorageClass);

/// An Immediate class with no policy (= Delete).
pub fn class(name: &str, provisioner: &str) -> ClassBuilder {
    ClassBuilder(StorageClass {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        provisioner: provisioner.into(),
        ..Default::default()
    })
}

impl ClassBuilder {
    /// `volumeBindingMode: WaitForFirstConsumer`.
    pub fn wffc(mut self) -> Self {
        self.0.volume_binding_mode = Some(a::WAIT_FOR_FIRST_CONSUMER.into());
        self
    }
    /// Reclaim policy.
    pub fn reclaim_policy(mut self, p: &str) -> Self {
        self.0.reclaim_policy = Some(p.into());
        self
    }
    /// `allowVolumeExpansion: true`.
    pub fn expandable(mut self) -> Self {
        self.0.allow_volume_expansion = Some(true);
        self
    }
    /// `allowedTopologies`: one term requiring `key` in `values`.
    pub fn topology(mut self, key: &str, values: &[&str]) -> Self {
        use k8s_openapi::api::core::v1::{TopologySelectorLabelRequirement, TopologySelectorTerm};
        self.0.allowed_topologies = Some(vec![TopologySelectorTerm {
            match_label_expressions: Some(vec![TopologySelectorLabelRequirement {
                key: key.into(),
                values: values.iter().map(|v| v.to_string()).collect(),
            }]),
        }]);
        self
    }
    /// `parameters` from `(key, value)` pairs.
    pub fn parameters(mut self, pairs: &[(&str, &str)]) -> Self {
        self.0.parameters = Some(parameters(pairs));
        self
    }
    /// Mount options.
    pub fn mount_options(mut self, o: &[&str]) -> Self {
        self.0.mount_options = Some(o.iter().map(|s| s.to_string()).collect());
        self
    }
    /// The class.
    pub fn build(self) -> StorageClass {
        self.0
    }
}

/// Builder for a PV.
pub struct PvBuilder(PersistentVolume);

/// A PV with policy Delete, phase Bound, no annotations.
pub fn pv(name: &str) -> PvBuilder {
    PvBuilder(PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.into()),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            persistent_volume_reclaim_policy: Some("Delete".into()),
            ..Default::default()
        }),
        status: Some(PersistentVolumeStatus {
            phase: Some("Bound".into()),
            ..Default::default()
        }),
    })
}

impl PvBuilder {
    fn ann(mut self, k: &str, v: &str) -> Self {
        self.0
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(k.into(), v.into());
        self
    }
    /// `spec.capacity.storage`.
    pub fn capacity(mut self, q: &str) -> Self {
        self.0.spec.get_or_insert_with(Default::default).capacity =
            Some([("storage".to_string(), Quantity(q.into()))].into());
        self
    }
    /// `pv.kubernetes.io/provisioned-by`.
    pub fn provisioned_by(self, p: &str) -> Self {
        self.ann(a::PROVISIONED_BY, p)
    }
    /// `pv.kubernetes.io/migrated-to`.
    pub fn migrated_to(self, p: &str) -> Self {
        self.ann(a::MIGRATED_TO, p)
    }
    /// Status phase.
    pub fn phase(mut self, p: &str) -> Self {
        self.0.status.get_or_insert_with(Default::default).phase = Some(p.into());
        self
    }
    /// Reclaim policy.
    pub fn policy(mut self, p: &str) -> Self {
        self.0
            .spec
            .get_or_insert_with(Default::default)
            .persistent_volume_reclaim_policy = Some(p.into());
        self
    }
    /// claimRef to `ns/name` with uid `uid-<name>`.
    pub fn claim_ref(mut self, ns: &str, name: &str) -> Self {
        self.0.spec.get_or_insert_with(Default::default).claim_ref = Some(ObjectReference {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        });
        self
    }
    /// Node affinity `key In [node]`.
    pub fn node_affinity(mut self, key: &str, node: &str) -> Self {
        self.0
            .spec
            .get_or_insert_with(Default::default)
            .node_affinity = Some(VolumeNodeAffinity {
            required: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: key.into(),
                        operator: "In".into(),
                        values: Some(vec![node.into()]),
                    }]),
                    match_fields: None,
                }],
            }),
        });
        self
    }
    /// Add a finalizer.
    pub fn finalizer(mut self, f: &str) -> Self {
        self.0
            .metadata
            .finalizers
            .get_or_insert_with(Vec::new)
            .push(f.into());
        self
    }
    /// Set a deletionTimestamp.
    pub fn deleting(mut self) -> Self {
        self.0.metadata.deletion_timestamp = Some(deleting_now());
        self
    }
    /// The PV.
    pub fn build(self) -> PersistentVolume {
        self.0
    }
}
