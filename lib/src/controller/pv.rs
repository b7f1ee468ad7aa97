//! Building the PersistentVolume object for a provisioned claim.
//!
//! A pure function of the claim, its class and what the provisioner returned,
//! so the exact object the controller writes is unit-tested without a server.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::ObjectMeta;
use kube::ResourceExt;

use crate::annotations;
use crate::provisioner::Provisioned;

/// The hook that names a claim's PV. It must be deterministic: the controller
/// finds the PV, and a provisioner its backend volume, again by this name.
pub type PvNameFn = Arc<dyn Fn(&PersistentVolumeClaim) -> String + Send + Sync>;

/// The default PV name: `pvc-<claim uid>`, like the Go library.
pub fn default_pv_name(claim: &PersistentVolumeClaim) -> String {
    format!("pvc-{}", claim.uid().unwrap_or_default())
}

/// `claimRef` pointing at `claim`, with its UID so the binder cannot bind the
/// PV to a re-created claim of the same name.
pub fn claim_ref(claim: &PersistentVolumeClaim) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: claim.namespace(),
        name: Some(claim.name_any()),
        uid: claim.uid(),
        resource_version: claim.resource_version(),
        ..ObjectReference::default()
    }
}

/// Whether the kubelet mounts this kind of volume source with mount
/// options. The kubelet refuses to mount a PV with `mountOptions` whose
/// plugin does not support them ("mount options are not supported for this
/// volume type"): `hostPath`, `flexVolume` and `portworxVolume` among the
/// sources a PV can have (`SupportsMountOption` of each plugin in
/// `pkg/volume`). An allow list, so that a source this list does not know
/// never gets options it may refuse.
pub fn takes_mount_options(spec: &PersistentVolumeSpec) -> bool {
    spec.nfs.is_some()
        || spec.local.is_some()
        || spec.csi.is_some()
        || spec.iscsi.is_some()
        || spec.fc.is_some()
        || spec.rbd.is_some()
        || spec.cephfs.is_some()
        || spec.glusterfs.is_some()
        || spec.azure_file.is_some()
        || spec.azure_disk.is_some()
        || spec.gce_persistent_disk.is_some()
        || spec.aws_elastic_block_store.is_some()
        || spec.cinder.is_some()
        || spec.vsphere_volume.is_some()
        || spec.quobyte.is_some()
        || spec.photon_persistent_disk.is_some()
}

/// Whether `class` asks for mount options that the volume in `pv` cannot
/// take (see [`takes_mount_options`]): they were left out of the PV, and
/// the claim gets a Warning event naming the class.
pub fn drops_class_mount_options(pv: &PersistentVolume, class: &StorageClass) -> bool {
    class.mount_options.as_ref().is_some_and(|o| !o.is_empty())
        && pv
            .spec
            .as_ref()
            .is_some_and(|s| s.mount_options.is_none() && !takes_mount_options(s))
}

/// Why `pv` cannot be bound to `claim`, if it cannot. The PV controller
/// binds a PV pre-bound to a claim only if its capacity is at least the
/// request, its volume mode is the claim's and its access modes include
/// all of the claim's (`FindMatchingVolume` in component-helpers and the
/// access-mode index it searches); anything else stays unbound forever and
/// holds its backend volume.
pub fn misfit(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> Option<String> {
    let spec = pv.spec.clone().unwrap_or_default();
    let claim_spec = claim.spec.clone().unwrap_or_default();
    let mut wrong = Vec::new();
    if let Ok(Some((request, want))) = crate::params::storage_request(claim) {
        let have = spec.capacity.as_ref().and_then(|c| c.get("storage"));
        match have.map(crate::params::quantity_bytes) {
            Some(Ok(bytes)) if bytes >= want => {}
            Some(Ok(_)) => wrong.push(format!(
                "capacity {} is less than the requested {request}",
                have.map(|q| q.0.as_str()).unwrap_or_default()
            )),
            Some(Err(e)) => wrong.push(format!("capacity is not a quantity: {e}")),
            None => wrong.push("no storage capacity".to_string()),
        }
    }
    let want_mode = claim_spec.volume_mode.as_deref().unwrap_or("Filesystem");
    let have_mode = spec.volume_mode.as_deref().unwrap_or("Filesystem");
    if want_mode != have_mode {
        wrong.push(format!(
            "volume mode {have_mode} is not the claim's {want_mode}"
        ));
    }
    let have_modes = spec.access_modes.unwrap_or_default();
    let want_modes = claim_spec.access_modes.unwrap_or_default();
    if !want_modes.iter().all(|m| have_modes.contains(m)) {
        wrong.push(format!(
            "access modes {have_modes:?} do not include all of the claim's {want_modes:?}"
        ));
    }
    (!wrong.is_empty()).then(|| wrong.join("; "))
}

/// Build the PV for `claim`: the provisioner's fragment plus the controller's
/// fields (see [`Provisioned`] for who owns what). `with_finalizer` adds
/// [`annotations::PV_FINALIZER`].
pub fn build_pv(
    pv_name: &str,
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    provisioned: Provisioned,
    with_finalizer: bool,
) -> PersistentVolume {
    let Provisioned {
        mut spec,
        mut annotations,
        labels,
    } = provisioned;
    annotations.insert(
        annotations::PROVISIONED_BY.into(),
        class.provisioner.clone(),
    );
    let claim_spec = claim.spec.clone().unwrap_or_default();

    spec.claim_ref = Some(claim_ref(claim));
    spec.storage_class_name = Some(class.name_any());
    spec.persistent_volume_reclaim_policy = Some(
        class
            .reclaim_policy
            .clone()
            .unwrap_or_else(|| "Delete".into()),
    );
    if spec.volume_mode.is_none() {
        spec.volume_mode = Some(
            claim_spec
                .volume_mode
                .clone()
                .unwrap_or_else(|| "Filesystem".into()),
        );
    }
    if spec.access_modes.as_ref().is_none_or(|m| m.is_empty()) {
        spec.access_modes = claim_spec.access_modes.clone();
    }
    if spec.mount_options.is_none() && takes_mount_options(&spec) {
        spec.mount_options = class.mount_options.clone();
    }
    if spec
        .capacity
        .as_ref()
        .is_none_or(|c| !c.contains_key("storage"))
    {
        if let Some(req) = claim_spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
        {
            spec.capacity
                .get_or_insert_with(BTreeMap::new)
                .insert("storage".into(), req.clone());
        }
    }

    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(pv_name.to_string()),
            annotations: Some(annotations),
            labels: (!labels.is_empty()).then_some(labels),
            finalizers: with_finalizer.then(|| vec![annotations::PV_FINALIZER.to_string()]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use k8s_openapi::api::core::v1::{HostPathVolumeSource, NFSVolumeSource};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn hostpath() -> Provisioned {
        Provisioned::new(PersistentVolumeSpec {
            host_path: Some(HostPathVolumeSource {
                path: "/tmp/x".into(),
                type_: None,
            }),
            ..Default::default()
        })
    }

    #[test]
    fn default_name_is_pvc_uid() {
        assert_eq!(default_pv_name(&claim("ns", "c").build()), "pvc-uid-c");
    }

    #[test]
    fn pv_has_claim_ref_class_policy_and_owner() {
        let c = claim("ns", "c").class("fast").request("1Gi").build();
        let sc = class("fast", "example.com/p").build();
        let pv = build_pv("pvc-uid-c", &c, &sc, hostpath(), false);
        let spec = pv.spec.as_ref().unwrap();
        let r = spec.claim_ref.as_ref().unwrap();
        assert_eq!(r.uid.as_deref(), Some("uid-c"));
        assert_eq!(r.namespace.as_deref(), Some("ns"));
        assert_eq!(r.name.as_deref(), Some("c"));
        assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            spec.persistent_volume_reclaim_policy.as_deref(),
            Some("Delete")
        );
        assert_eq!(spec.volume_mode.as_deref(), Some("Filesystem"));
        assert_eq!(spec.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
        assert_eq!(
            spec.capacity.as_ref().unwrap()["storage"],
            Quantity("1Gi".into())
        );
        assert_eq!(spec.host_path.as_ref().unwrap().path, "/tmp/x");
        assert_eq!(
            pv.annotations()[annotations::PROVISIONED_BY],
            "example.com/p"
        );
        assert!(pv.metadata.finalizers.is_none());
    }

    fn nfs() -> Provisioned {
        Provisioned::new(PersistentVolumeSpec {
            nfs: Some(NFSVolumeSource {
                server: "10.0.0.1".into(),
                path: "/export/x".into(),
                read_only: None,
            }),
            ..Default::default()
        })
    }

    #[test]
    fn class_mount_options_go_only_where_the_kubelet_takes_them() {
        let c = claim("ns", "c").build();
        let sc = class("fast", "p").mount_options(&["vers=4.1"]).build();
        let pv = build_pv("n", &c, &sc, nfs(), false);
        assert_eq!(
            pv.spec.as_ref().unwrap().mount_options,
            Some(vec!["vers=4.1".into()])
        );
        assert!(!drops_class_mount_options(&pv, &sc));
        let pv = build_pv("n", &c, &sc, hostpath(), false);
        assert_eq!(pv.spec.as_ref().unwrap().mount_options, None);
        assert!(drops_class_mount_options(&pv, &sc));
        // No options asked for: nothing dropped.
        let plain = class("fast", "p").build();
        assert!(!drops_class_mount_options(
            &build_pv("n", &c, &plain, hostpath(), false),
            &plain
        ));
    }

    #[test]
    fn a_volume_that_does_not_fit_its_claim_is_named() {
        let c = claim("ns", "c").request("2Gi").build();
        let sc = class("fast", "p").build();
        assert_eq!(misfit(&build_pv("n", &c, &sc, hostpath(), false), &c), None);
        let mut small = hostpath();
        small.spec.capacity = Some([("storage".to_string(), Quantity("1Gi".into()))].into());
        small.spec.access_modes = Some(vec!["ReadOnlyMany".into()]);
        small.spec.volume_mode = Some("Block".into());
        let why = misfit(&build_pv("n", &c, &sc, small, false), &c).unwrap();
        assert_eq!(
            why,
            "capacity 1Gi is less than the requested 2Gi; volume mode Block is not the claim's Filesystem; access modes [\"ReadOnlyMany\"] do not include all of the claim's [\"ReadWriteOnce\"]"
        );
        // Bigger than asked is fine (the binder takes it).
        let mut big = hostpath();
        big.spec.capacity = Some([("storage".to_string(), Quantity("3Gi".into()))].into());
        assert_eq!(misfit(&build_pv("n", &c, &sc, big, false), &c), None);
    }

    #[test]
    fn class_policy_mount_options_and_block_mode() {
        let c = claim("ns", "c").block().build();
        let sc = class("fast", "p")
            .reclaim_policy("Retain")
            .mount_options(&["ro", "noatime"])
            .build();
        let pv = build_pv("n", &c, &sc, nfs(), true);
        let spec = pv.spec.as_ref().unwrap();
        assert_eq!(
            spec.persistent_volume_reclaim_policy.as_deref(),
            Some("Retain")
        );
        assert_eq!(
            spec.mount_options,
            Some(vec!["ro".into(), "noatime".into()])
        );
        assert_eq!(spec.volume_mode.as_deref(), Some("Block"));
        assert_eq!(
            pv.metadata.finalizers,
            Some(vec![annotations::PV_FINALIZER.to_string()])
        );
    }

    #[test]
    fn provisioner_values_win_where_it_owns_them() {
        let c = claim("ns", "c").request("1Gi").build();
        let sc = class("fast", "p").mount_options(&["a"]).build();
        let mut p = hostpath();
        p.spec.capacity = Some([("storage".to_string(), Quantity("5Gi".into()))].into());
        p.spec.mount_options = Some(vec!["b".into()]);
        p.spec.storage_class_name = Some("other".into());
        p.annotations.insert("x".into(), "y".into());
        p.labels.insert("l".into(), "v".into());
        let pv = build_pv("n", &c, &sc, p, false);
        let spec = pv.spec.as_ref().unwrap();
        assert_eq!(
            spec.capacity.as_ref().unwrap()["storage"],
            Quantity("5Gi".into())
        );
        assert_eq!(spec.mount_options, Some(vec!["b".into()]));
        assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(pv.annotations()["x"], "y");
        assert_eq!(pv.labels()["l"], "v");
    }
}
