//! The claim decisions: which claims are ours, and what each one needs.
//!
//! [`decide`] turns a claim, its class and its PV (from the caches) into a
//! [`ClaimDecision`]; `claim_loop` then performs that decision's API calls.
//! Everything here is pure (no API, no provisioner), so it is tested below
//! with plain objects.
//! The leak-proof protocol (intent finalizer) is described in
//! [`crate::controller`].

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, TypedObjectReference};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use serde_json::json;

use super::Scope;
use crate::annotations as a;

/// The provisioner a claim asks for: the GA annotation, else the beta one.
pub fn claim_provisioner(claim: &PersistentVolumeClaim) -> Option<&str> {
    let ann = claim.metadata.annotations.as_ref()?;
    ann.get(a::STORAGE_PROVISIONER)
        .or_else(|| ann.get(a::BETA_STORAGE_PROVISIONER))
        .map(String::as_str)
}

/// The claim's class: the beta annotation takes precedence over
/// `spec.storageClassName`. Empty means no class.
pub fn claim_class(claim: &PersistentVolumeClaim) -> Option<&str> {
    claim
        .metadata
        .annotations
        .as_ref()
        .and_then(|m| m.get(a::BETA_STORAGE_CLASS))
        .map(String::as_str)
        .or_else(|| claim.spec.as_ref()?.storage_class_name.as_deref())
        .filter(|c| !c.is_empty())
}

/// `volume.kubernetes.io/selected-node`, if set and non-empty.
pub fn selected_node(claim: &PersistentVolumeClaim) -> Option<&str> {
    claim
        .metadata
        .annotations
        .as_ref()?
        .get(a::SELECTED_NODE)
        .map(String::as_str)
        .filter(|n| !n.is_empty())
}

/// The single `kubernetes.io/hostname` label value an `Immediate` class's
/// `allowedTopologies` names (one term, one expression, one value), if any.
/// A label value, not a node name: they differ on clusters with FQDN names.
pub fn class_topology_hostname(class: &StorageClass) -> Option<&str> {
    if is_wffc(class) {
        return None;
    }
    match class.allowed_topologies.as_deref()? {
        [term] => match term.match_label_expressions.as_deref()? {
            [expr] if expr.key == a::HOSTNAME_LABEL => match expr.values.as_slice() {
                [node] if !node.is_empty() => Some(node.as_str()),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// The node (name) a claim's volume belongs on: the scheduler's selected
/// node; else, in node-local mode, our node when an `Immediate` class's
/// `allowedTopologies` names our hostname label. A cluster-wide controller
/// cannot turn a label value into a node name without the Nodes, so there a
/// topology-only claim has no target node (as in the Go library, the
/// provisioner sees the class's `allowedTopologies` itself).
pub fn target_node<'a>(
    scope: &'a Scope,
    claim: &'a PersistentVolumeClaim,
    class: Option<&'a StorageClass>,
) -> Option<&'a str> {
    selected_node(claim).or_else(|| {
        let wanted = class.and_then(class_topology_hostname)?;
        let ours = scope.hostname()?;
        // Any other value is another node's: say so with a name that can
        // never equal ours, so the claim is left to that node's instance.
        Some(if wanted == ours {
            scope.node_name.as_deref()?
        } else {
            OTHER_NODE
        })
    })
}

/// The target of a claim whose class's topology names another node's
/// hostname label (see [`target_node`]); not a valid node name.
const OTHER_NODE: &str = "<the node of another hostname label>";

/// The bytes to grow `pv` to, when its bound `claim` requests more than the
/// PV's capacity and `class` has `allowVolumeExpansion: true`.
pub fn expansion_needed(
    claim: &PersistentVolumeClaim,
    pv: &PersistentVolume,
    class: &StorageClass,
) -> Option<u64> {
    if class.allow_volume_expansion != Some(true) {
        return None;
    }
    let (_, want) = crate::params::storage_request(claim).ok()??;
    let have = pv.spec.as_ref()?.capacity.as_ref()?.get("storage")?;
    let have = crate::params::quantity_bytes(have).ok()?;
    (want > have).then_some(want)
}

/// Whether the claim carries our intent finalizer.
pub fn has_intent(claim: &PersistentVolumeClaim) -> bool {
    claim
        .finalizers()
        .iter()
        .any(|f| f == a::PROVISIONING_FINALIZER)
}

/// Whether `pv` is the saved PV of `claim` (its claimRef has the claim's UID).
pub fn pv_is_for(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let uid = claim.metadata.uid.as_deref();
    uid.is_some()
        && pv
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .and_then(|r| r.uid.as_deref())
            == uid
}

/// The claim's data source: `spec.dataSourceRef`, else `spec.dataSource`
/// (the API server copies one into the other where it can; either alone
/// is honoured here).
pub fn data_source(claim: &PersistentVolumeClaim) -> Option<TypedObjectReference> {
    let spec = claim.spec.as_ref()?;
    spec.data_source_ref.clone().or_else(|| {
        spec.data_source.as_ref().map(|d| TypedObjectReference {
            api_group: d.api_group.clone(),
            kind: d.kind.clone(),
            name: d.name.clone(),
            namespace: None,
        })
    })
}

/// What the provisioner can serve, for [`decide`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Support {
    /// `volumeMode: Block` claims ([`Provisioner::supports_block`](crate::Provisioner::supports_block)).
    pub block: bool,
    /// This claim's data source, if it has one
    /// ([`Provisioner::supports_data_source`](crate::Provisioner::supports_data_source)).
    pub data_source: bool,
    /// The backend records intent itself
    /// ([`Provisioner::intent_records`](crate::Provisioner::intent_records)):
    /// provision without the intent finalizer.
    pub records_intent: bool,
}

fn is_block(claim: &PersistentVolumeClaim) -> bool {
    claim.spec.as_ref().and_then(|s| s.volume_mode.as_deref()) == Some("Block")
}

fn is_wffc(class: &StorageClass) -> bool {
    class.volume_binding_mode.as_deref() == Some(a::WAIT_FOR_FIRST_CONSUMER)
}

/// Why a claim needs nothing from us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The provisioner annotation names someone else (or is absent).
    NotOurs,
    /// Node-local mode and the selected node is not ours (or none).
    OtherNode,
    /// Being deleted, and we never started provisioning it.
    Deleting,
    /// `spec.volumeName` is set: already bound or pre-bound.
    AlreadyBound,
    /// Its PV exists.
    AlreadyProvisioned,
    /// No StorageClass: not dynamic provisioning.
    NoClass,
    /// The provisioner's `should_provision` declined.
    Qualifier,
}

/// What to do with a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimDecision {
    /// Leave the claim alone, for the reason given.
    Skip(Skip),
    /// WaitForFirstConsumer class and no node selected yet.
    WaitForNode,
    /// Bound to our PV, the class allows expansion, and the claim requests
    /// more than the PV's capacity: grow the volume to this many bytes.
    Expand(u64),
    /// Node-local mode, and neither a selected node nor the class's
    /// `allowedTopologies` says which node the volume belongs on (an
    /// `Immediate` class): a Warning event says how to fix the class.
    NoNode,
    /// Ours, but its StorageClass (named) is not in the cache: retry.
    ClassMissing(String),
    /// Block claim, provisioner without block support: Warning event only.
    RejectBlock,
    /// A data source (clone, restore) the provisioner does not declare
    /// support for: Warning event only, no (empty) volume.
    RejectDataSource,
    /// Add the intent finalizer, then provision.
    RecordIntent,
    /// Intent recorded (the finalizer is on the claim, or the backend
    /// records it itself): call the provisioner and save the PV.
    Provision,
    /// The PV is saved (or the claim is bound): remove the intent finalizer.
    ReleaseIntent,
    /// Deleted before its PV was saved: delete the backend volume, then
    /// release the intent.
    CleanupDeleted,
    /// The selected node (named) is gone and nothing was started: remove
    /// `volume.kubernetes.io/selected-node` so the scheduler picks again
    /// (in every mode: in node-local mode no instance serves a deleted node).
    NodeGone(String),
}

/// Decide what a claim needs. `class` is the claim's class from the cache,
/// `pv` the PV named after the claim (if cached), `node_gone` whether its
/// selected node is missing from the Node cache; `support` and `qualifier`
/// come from the provisioner.
pub fn decide(
    scope: &Scope,
    claim: &PersistentVolumeClaim,
    class: Option<&StorageClass>,
    pv: Option<&PersistentVolume>,
    node_gone: bool,
    support: Support,
    qualifier: impl FnOnce(&PersistentVolumeClaim, &StorageClass) -> bool,
) -> ClaimDecision {
    use ClaimDecision as D;
    if !claim_provisioner(claim).is_some_and(|p| scope.is_ours(p)) {
        return D::Skip(Skip::NotOurs);
    }
    if let (true, Some(node)) = (node_gone, selected_node(claim)) {
        let unbound = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_deref())
            .is_none_or(str::is_empty);
        let saved = pv.is_some_and(|pv| pv_is_for(pv, claim));
        // With our intent on it, provisioning has started: its own path
        // (the provisioner may answer Reschedule) decides.
        if unbound && !saved && !has_intent(claim) && claim.metadata.deletion_timestamp.is_none() {
            return D::NodeGone(node.to_string());
        }
    }
    let target = target_node(scope, claim, class);
    if let (Some(node), Some(target)) = (&scope.node_name, target) {
        if target != node {
            return D::Skip(Skip::OtherNode);
        }
    }
    let intent = has_intent(claim);
    let saved = pv.is_some_and(|pv| pv_is_for(pv, claim));
    if claim.metadata.deletion_timestamp.is_some() {
        return match (intent, saved) {
            (false, _) => D::Skip(Skip::Deleting),
            (true, true) => D::ReleaseIntent,
            (true, false) => D::CleanupDeleted,
        };
    }
    let bound = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .is_some_and(|v| !v.is_empty());
    if bound || saved {
        if let (false, true, Some(pv), Some(class)) = (intent, bound && saved, pv, class) {
            if let Some(bytes) = expansion_needed(claim, pv, class) {
                return D::Expand(bytes);
            }
        }
        return if intent {
            D::ReleaseIntent
        } else if bound {
            D::Skip(Skip::AlreadyBound)
        } else {
            D::Skip(Skip::AlreadyProvisioned)
        };
    }
    let Some(class_name) = claim_class(claim) else {
        return D::Skip(Skip::NoClass);
    };
    let Some(class) = class else {
        return D::ClassMissing(class_name.to_string());
    };
    if is_wffc(class) && selected_node(claim).is_none() {
        return D::WaitForNode;
    }
    if scope.node_name.is_some() && target.is_none() {
        return D::NoNode;
    }
    if is_block(claim) && !support.block {
        return D::RejectBlock;
    }
    if data_source(claim).is_some() && !support.data_source {
        return D::RejectDataSource;
    }
    if !qualifier(claim, class) {
        return D::Skip(Skip::Qualifier);
    }
    if intent || support.records_intent {
        D::Provision
    } else {
        D::RecordIntent
    }
}

/// The JSON patch for a reschedule: drop the selected node (and our intent
/// finalizer at `intent_index`, if any), guarded by the resourceVersion the
/// decision was made on.
pub fn reschedule_patch(resource_version: &str, intent_index: Option<usize>) -> json_patch::Patch {
    let mut ops = vec![
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": resource_version}),
        json!({"op": "remove", "path": a::annotation_pointer(a::SELECTED_NODE)}),
    ];
    if let Some(i) = intent_index {
        ops.extend(super::remove_finalizer_ops(i, a::PROVISIONING_FINALIZER));
    }
    serde_json::from_value(serde_json::Value::Array(ops)).expect("valid JSON patch")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;

    const P: &str = "example.com/p";

    fn scope() -> Scope {
        Scope {
            names: vec![P.into(), "old.example.com/p".into()],
            node_name: None,
            node_hostname: None,
        }
    }

    fn node_scope(n: &str) -> Scope {
        Scope {
            node_name: Some(n.into()),
            ..scope()
        }
    }

    fn d(
        scope: &Scope,
        c: &PersistentVolumeClaim,
        class: Option<&StorageClass>,
        pv: Option<&PersistentVolume>,
    ) -> ClaimDecision {
        decide(scope, c, class, pv, false, Support::default(), |_, _| true)
    }

    fn sc() -> StorageClass {
        class("fast", P).build()
    }

    #[test]
    fn ours_by_ga_annotation() {
        let c = claim("ns", "c").provisioner(P).class("fast").build();
        assert_eq!(
            d(&scope(), &c, Some(&sc()), None),
            ClaimDecision::RecordIntent
        );
    }

    #[test]
    fn ours_by_beta_annotation_fallback() {
        let c = claim("ns", "c").beta_provisioner(P).class("fast").build();
        assert_eq!(
            d(&scope(), &c, Some(&sc()), None),
            ClaimDecision::RecordIntent
        );
    }

    #[test]
    fn ga_annotation_wins_over_beta() {
        let c = claim("ns", "c")
            .provisioner("other")
            .beta_provisioner(P)
            .class("fast")
            .build();
        assert_eq!(
            d(&scope(), &c, Some(&sc()), None),
            ClaimDecision::Skip(Skip::NotOurs)
        );
    }

    #[test]
    fn additional_names_are_ours() {
        let c = claim("ns", "c")
            .provisioner("old.example.com/p")
            .class("fast")
            .build();
        assert_eq!(
            d(&scope(), &c, Some(&sc()), None),
            ClaimDecision::RecordIntent
        );
    }

    #[test]
    fn not_ours_or_unannotated() {
        let c = claim("ns", "c").provisioner("other").class("fast").build();
        assert_eq!(
            d(&scope(), &c, Some(&sc()), None),
            ClaimDecision::Skip(Skip::NotOurs)
        );
        let c = claim("ns", "c").class("fast").build();
        assert_eq!(
            d(&scope(), &c, Some(&sc()), None),
            ClaimDecision::Skip(Skip::NotOurs)
        );
    }

    #[test]
    fn beta_class_annotation_takes_precedence() {
        let c = claim("ns", "c").beta_class("beta").class("spec").build();
        assert_eq!(claim_class(&c), Some("beta"));
        let c = claim("ns", "c").class("spec").build();
        assert_eq!(claim_class(&c), Some("spec"));
        let c = claim("ns", "c").class("").build();
        assert_eq!(claim_class(&c), None);
        let c = claim("ns", "c")
            .provisioner(P)
            .beta_class("gone")
            .class("fast")
            .build();
        assert_eq!(
            d(&scope(), &c, None, None),
            ClaimDecision::ClassMissing("gone".into())
        );
    }

    #[test]
    fn no_class_is_skipped() {
        let c = claim("ns", "c").provisioner(P).build();
        assert_eq!(
            d(&scope(), &c, None, None),
            ClaimDecision::Skip(Skip::NoClass)
        );
    }

    #[test]
    fn volume_name_skips() {
        let c = claim("ns", "c")
            .provisioner(P)
            .class("fast")
            .volume_name("pv1")
            .build();
        assert_eq!(
            d(&scope(), &c, Some(&sc()), None),
            ClaimDecision::Skip(Skip::AlreadyBound)
        );
        let c = claim("ns", "c")
            .provisioner(P)
            .class("fast")
            .volume_name("pv1")
            .finalizer(a::PROVISIONING_FINALIZER)
            .build();
        assert_eq!(
            d(&scope(), &c, Some(&sc()), None),
            ClaimDecision::ReleaseIntent
        );
    }

    #[test]
    fn existing_pv_for_this_uid_means_done() {
        let c = claim("ns", "c").provisioner(P).class("fast").build();
        let saved = pv("pvc-uid-c").claim_ref("ns", "c").build();
        assert_eq!(
            d(&scope(), &c, Some(&sc()), Some(&saved)),
            ClaimDecision::Skip(Skip::AlreadyProvisioned)
        );
        // a PV of the same name for another claim does not count
        let other = pv("pvc-uid-c").claim_ref("ns", "x").build();
        assert_eq!(
            d(&scope(), &c, Some(&sc()), Some(&other)),
            ClaimDecision::RecordIntent
        );
    }

    #[test]
    fn wffc_waits_for_selected_node() {
        let wffc = class("fast", P).wffc().build();
        let c = claim("ns", "c").provisioner(P).class("fast").build();
        assert_eq!(
            d(&scope(), &c, Some(&wffc), None),
            ClaimDecision::WaitForNode
        );
        let c = claim("ns", "c")
            .provisioner(P)
            .class("fast")
            .selected_node("")
            .build();
        assert_eq!(
            d(&scope(), &c, Some(&wffc), None),
            ClaimDecision::WaitForNode
        );
        let c = claim("ns", "c")
            .provisioner(P)
            .class("fast")
            .selected_node("n1")
            .build();
        assert_eq!(
            d(&scope(), &c, Some(&wffc), None),
            ClaimDecision::RecordIntent
        );
    }

    #[test]
    fn immediate_class_topology_names_the_node_in_node_local_mode() {
        let c = claim("ns", "c").provisioner(P).class("fast").build();
        let pinned = class("fast", P)
            .topology(a::HOSTNAME_LABEL, &["n1"])
            .build();
        assert_eq!(class_topology_hostname(&pinned), Some("n1"));
        assert_eq!(
            target_node(&node_scope("n1"), &c, Some(&pinned)),
            Some("n1")
        );
        // Cluster-wide, a label value is not turned into a node name.
        assert_eq!(target_node(&scope(), &c, Some(&pinned)), None);
        assert_eq!(
            d(&node_scope("n1"), &c, Some(&pinned), None),
            ClaimDecision::RecordIntent
        );
        assert_eq!(
            d(&node_scope("n2"), &c, Some(&pinned), None),
            ClaimDecision::Skip(Skip::OtherNode)
        );
        // A selected node wins over the class's topology.
        let sel = claim("ns", "c")
            .provisioner(P)
            .class("fast")
            .selected_node("n2")
            .build();
        assert_eq!(target_node(&scope(), &sel, Some(&pinned)), Some("n2"));
        // Not a single hostname, or a WaitForFirstConsumer class: no node.
        for unclear in [
            class("fast", P)
                .topology(a::HOSTNAME_LABEL, &["n1", "n2"])
                .build(),
            class("fast", P)
                .topology("topology.kubernetes.io/zone", &["z1"])
                .build(),
            class("fast", P)
                .topology(a::HOSTNAME_LABEL, &["n1"])
                .wffc()
                .build(),
        ] {
            assert_eq!(class_topology_hostname(&unclear), None);
        }
    }

    #[test]
    fn class_topology_is_matched_against_the_hostname_label_not_the_node_name() {
        // FQDN node names: the label is the short host name.
        let fqdn = Scope {
            node_name: Some("n1.example.com".into()),
            node_hostname: Some("n1".into()),
            ..scope()
        };
        let c = claim("ns", "c").provisioner(P).class("fast").build();
        let by_label = class("fast", P)
            .topology(a::HOSTNAME_LABEL, &["n1"])
            .build();
        assert_eq!(
            target_node(&fqdn, &c, Some(&by_label)),
            Some("n1.example.com")
        );
        assert_eq!(
            d(&fqdn, &c, Some(&by_label), None),
            ClaimDecision::RecordIntent
        );
        let by_name = class("fast", P)
            .topology(a::HOSTNAME_LABEL, &["n1.example.com"])
            .build();
        assert_eq!(
            d(&fqdn, &c, Some(&by_name), None),
            ClaimDecision::Skip(Skip::OtherNode)
        );
    }

    #[test]
    fn node_local_immediate_claim_without_a_node_is_reported() {
        let c = claim("ns", "c").provisioner(P).class("fast").build();
        assert_eq!(
            d(&node_scope("n1"), &c, Some(&sc()), None),
            ClaimDecision::NoNode
        );
        // Cluster-wide mode needs no node.
        assert_eq!(
            d(&scope(), &c, Some(&sc()), None),
            ClaimDecision::RecordIntent
        );
        // Bound claims are never reported.
        let bound = claim("ns", "c")
            .provisioner(P)
            .class("fast")
            .volume_name("v")
            .build();
        assert_eq!(
            d(&node_scope("n1"), &bound, Some(&sc()), None),
            ClaimDecision::Skip(Skip::AlreadyBound)
        );
    }

    #[test]
    fn a_bigger_request_on_an_expandable_class_expands_the_bound_volume() {
        let c = claim("ns", "c")
            .provisioner(P)
            .class("fast")
            .volume_name("pvc-uid-c")
            .request("2Gi")
            .build();
        let pv1 = pv("pvc-uid-c").claim_ref("ns", "c").capacity("1Gi").build();
        let expandable = class("fast", P).expandable().build();
        assert_eq!(
            d(&scope(), &c, Some(&expandable), Some(&pv1)),
            ClaimDecision::Expand(2 << 30)
        );
        // Not allowed by the class, already big enough, or not our PV: nothing.
        assert_eq!(
            d(&scope(), &c, Some(&sc()), Some(&pv1)),
            ClaimDecision::Skip(Skip::AlreadyBound)
        );
        let pv2 = pv("pvc-uid-c").claim_ref("ns", "c").capacity("2Gi").build();
        assert_eq!(
            d(&scope(), &c, Some(&expandable), Some(&pv2)),
            ClaimDecision::Skip(Skip::AlreadyBound)
        );
        let other = pv("pvc-uid-c").claim_ref("ns", "x").capacity("1Gi").build();
        assert_eq!(
            d(&scope(), &c, Some(&expandable), Some(&other)),
            ClaimDecision::Skip(Skip::AlreadyBound)
        );
    }

    #[test]
    fn node_local_takes_only_its_node() {
        let c = claim("ns", "c")
            .provisioner(P)
            .class("fast")
            .selected_node("n1")
            .build();
        assert_eq!(
            d(&node_scope("n1"), &c, Some(&sc()), None),
            ClaimDecision::RecordIntent
        );
        assert_eq!(
            d(&node_scope("n2"), &c, Some(&sc()), None),
            ClaimDecision::Skip(Skip::OtherNode)
        );
        // No node at all (Immediate class without topology): reported, see
        // node_local_immediate_claim_without_a_node_is_reported.
        let c = claim("ns", "c").provisioner(P).class("fast").build();
        assert_eq!(
            d(&node_scope("n1"), &c, Some(&sc()), None),
            ClaimDecision::NoNode
        );
    }

    #[test]
    fn block_without_support_is_rejected() {
        let c = claim("ns", "c")
            .provisioner(P)
            .class("fast")
            .block()
            .build();
        assert_eq!(
            d(&scope(), &c, Some(&sc()), None),
            ClaimDecision::RejectBlock
        );
        assert_eq!(
            decide(
                &scope(),
                &c,
                Some(&sc()),
                None,
                false,
                Support {
                    block: true,
                    ..Support::default()
                },
                |_, _| true
            ),
            ClaimDecision::RecordIntent
        );
    }

    #[test]
    fn a_data_source_needs_the_capability() {
        let mut c = claim("ns", "c").provisioner(P).class("fast").build();
        assert_eq!(data_source(&c), None);
        c.spec.as_mut().unwrap().data_source =
            Some(k8s_openapi::api::core::v1::TypedLocalObjectReference {
                api_group: None,
                kind: "PersistentVolumeClaim".into(),
                name: "src".into(),
            });
        assert_eq!(data_source(&c).unwrap().kind, "PersistentVolumeClaim");
        assert_eq!(
            d(&scope(), &c, Some(&sc()), None),
            ClaimDecision::RejectDataSource
        );
        let can = Support {
            data_source: true,
            ..Support::default()
        };
        assert_eq!(
            decide(&scope(), &c, Some(&sc()), None, false, can, |_, _| true),
            ClaimDecision::RecordIntent
        );
        // dataSourceRef wins (it can name other API groups).
        c.spec.as_mut().unwrap().data_source_ref = Some(TypedObjectReference {
            api_group: Some("snapshot.storage.k8s.io".into()),
            kind: "VolumeSnapshot".into(),
            name: "snap".into(),
            namespace: None,
        });
        assert_eq!(data_source(&c).unwrap().kind, "VolumeSnapshot");
    }

    #[test]
    fn qualifier_can_decline() {
        let c = claim("ns", "c").provisioner(P).class("fast").build();
        assert_eq!(
            decide(
                &scope(),
                &c,
                Some(&sc()),
                None,
                false,
                Support::default(),
                |_, _| false
            ),
            ClaimDecision::Skip(Skip::Qualifier)
        );
    }

    #[test]
    fn intent_recorded_then_provision() {
        let c = claim("ns", "c")
            .provisioner(P)
            .class("fast")
            .finalizer(a::PROVISIONING_FINALIZER)
            .build();
        assert_eq!(d(&scope(), &c, Some(&sc()), None), ClaimDecision::Provision);
        let saved = pv("pvc-uid-c").claim_ref("ns", "c").build();
        assert_eq!(
            d(&scope(), &c, Some(&sc()), Some(&saved)),
            ClaimDecision::ReleaseIntent
        );
    }

    #[test]
    fn a_backend_that_records_intent_is_provisioned_without_the_finalizer() {
        let records = Support {
            records_intent: true,
            ..Support::default()
        };
        let dr = |c: &PersistentVolumeClaim, pv: Option<&PersistentVolume>| {
            decide(&scope(), c, Some(&sc()), pv, false, records, |_, _| true)
        };
        let c = claim("ns", "c").provisioner(P).class("fast").build();
        assert_eq!(dr(&c, None), ClaimDecision::Provision);
        // Its PV saved: nothing to release, nothing to do.
        let saved = pv("pvc-uid-c").claim_ref("ns", "c").build();
        assert_eq!(
            dr(&c, Some(&saved)),
            ClaimDecision::Skip(Skip::AlreadyProvisioned)
        );
        // Deleted: the backend's sweep, not the claim loop, cleans up.
        let gone = claim("ns", "c")
            .provisioner(P)
            .class("fast")
            .deleting()
            .build();
        assert_eq!(dr(&gone, None), ClaimDecision::Skip(Skip::Deleting));
        // A finalizer left by an older version is still honoured.
        let old = claim("ns", "c")
            .provisioner(P)
            .class("fast")
            .finalizer(a::PROVISIONING_FINALIZER)
            .deleting()
            .build();
        assert_eq!(dr(&old, None), ClaimDecision::CleanupDeleted);
        assert_eq!(dr(&old, Some(&saved)), ClaimDecision::ReleaseIntent);
    }

    #[test]
    fn deleted_claims() {
        let base = || claim("ns", "c").provisioner(P).class("fast").deleting();
        assert_eq!(
            d(&scope(), &base().build(), Some(&sc()), None),
            ClaimDecision::Skip(Skip::Deleting)
        );
        let c = base().finalizer(a::PROVISIONING_FINALIZER).build();
        assert_eq!(
            d(&scope(), &c, Some(&sc()), None),
            ClaimDecision::CleanupDeleted
        );
        // even when the class is gone the decision is cleanup (the act reports it)
        assert_eq!(d(&scope(), &c, None, None), ClaimDecision::CleanupDeleted);
        let saved = pv("pvc-uid-c").claim_ref("ns", "c").build();
        assert_eq!(
            d(&scope(), &c, Some(&sc()), Some(&saved)),
            ClaimDecision::ReleaseIntent
        );
    }

    #[test]
    fn a_deleted_selected_node_is_given_back_to_the_scheduler_in_every_mode() {
        let c = claim("ns", "c")
            .provisioner(P)
            .class("fast")
            .selected_node("gone")
            .build();
        let wffc = class("fast", P).wffc().build();
        let gone = |s: &Scope, c: &PersistentVolumeClaim| {
            decide(s, c, Some(&wffc), None, true, Support::default(), |_, _| {
                true
            })
        };
        // Cluster-wide, and node-local on another node (nobody serves "gone").
        assert_eq!(gone(&scope(), &c), ClaimDecision::NodeGone("gone".into()));
        assert_eq!(
            gone(&node_scope("n1"), &c),
            ClaimDecision::NodeGone("gone".into())
        );
        // Not ours, already started (intent), bound or deleting: left alone.
        let other = claim("ns", "c")
            .provisioner("other")
            .selected_node("gone")
            .build();
        assert_eq!(gone(&scope(), &other), ClaimDecision::Skip(Skip::NotOurs));
        let started = claim("ns", "c")
            .provisioner(P)
            .class("fast")
            .selected_node("gone")
            .finalizer(a::PROVISIONING_FINALIZER)
            .build();
        assert_eq!(gone(&scope(), &started), ClaimDecision::Provision);
        let bound = claim("ns", "c")
            .provisioner(P)
            .class("fast")
            .selected_node("gone")
            .volume_name("v")
            .build();
        assert_eq!(
            gone(&scope(), &bound),
            ClaimDecision::Skip(Skip::AlreadyBound)
        );
        let deleting = claim("ns", "c")
            .provisioner(P)
            .class("fast")
            .selected_node("gone")
            .deleting()
            .build();
        assert_eq!(
            gone(&scope(), &deleting),
            ClaimDecision::Skip(Skip::Deleting)
        );
    }

    #[test]
    fn reschedule_patch_is_guarded() {
        let p = serde_json::to_value(reschedule_patch("42", Some(1))).unwrap();
        assert_eq!(
            p,
            json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
                {"op": "remove", "path": "/metadata/annotations/volume.kubernetes.io~1selected-node"},
                {"op": "test", "path": "/metadata/finalizers/1", "value": a::PROVISIONING_FINALIZER},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ])
        );
    }

    /// What the patch does to a claim, not how it is spelled: on the version
    /// it was made for it removes the selected node and only our finalizer;
    /// on a newer version, or with another finalizer at that index, the
    /// whole patch is refused and the claim is unchanged.
    #[test]
    fn reschedule_patch_applies_only_to_the_version_and_finalizer_it_names() {
        let claim = claim("ns", "c")
            .selected_node("n1")
            .finalizer("example.com/other")
            .finalizer(a::PROVISIONING_FINALIZER)
            .build();
        let rv = claim.metadata.resource_version.clone().unwrap();
        let doc = serde_json::to_value(&claim).unwrap();

        let mut patched = doc.clone();
        json_patch::patch(&mut patched, &reschedule_patch(&rv, Some(1))).unwrap();
        let patched: PersistentVolumeClaim = serde_json::from_value(patched).unwrap();
        assert_eq!(selected_node(&patched), None);
        assert_eq!(
            patched.metadata.finalizers,
            Some(vec!["example.com/other".to_string()])
        );

        let mut newer = doc.clone();
        newer["metadata"]["resourceVersion"] = json!("999");
        let before = newer.clone();
        assert!(json_patch::patch(&mut newer, &reschedule_patch(&rv, Some(1))).is_err());
        assert_eq!(newer, before, "a refused patch leaves the claim as it was");

        let mut other = doc;
        let before = other.clone();
        assert!(json_patch::patch(&mut other, &reschedule_patch(&rv, Some(0))).is_err());
        assert_eq!(other, before);
    }
}
