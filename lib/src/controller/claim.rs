//! The claim loop: which claims are ours, and provisioning them.
//!
//! [`decide`] turns a claim, its class and its PV (from the caches) into a
//! [`ClaimDecision`]; `reconcile` then performs that decision's API calls.
//! The leak-proof protocol (intent finalizer) is described in
//! [`crate::controller`].

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{
    Node, PersistentVolume, PersistentVolumeClaim, TypedObjectReference,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::Instrument;

use super::finalizers::{is_status, Added};
use super::outcome::{self, Act, Deleted, Event, Unsaved};
use super::own_writes::ClaimWriter;
use super::step::{finish, key_of, stand_in_recheck, Step};
use super::{pv::build_pv, Ctx, Scope};
use crate::annotations as a;
use crate::events::{Action as EventAction, Reason};
use crate::metrics::Metrics;
use crate::provisioner::{ProvisionError, ProvisionOptions, Provisioner};

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
    /// `volumeMode: Block` claims ([`Provisioner::supports_block`]).
    pub block: bool,
    /// This claim's data source, if it has one
    /// ([`Provisioner::supports_data_source`]).
    pub data_source: bool,
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
    /// Nothing.
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
    /// Intent recorded: call the provisioner and save the PV.
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
    if intent {
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

/// Reconcile one claim (the kube-runtime entry point).
pub(crate) async fn reconcile<P: Provisioner>(
    cached: Arc<super::compact::Compact<PersistentVolumeClaim>>,
    ctx: Arc<Ctx<P>>,
) -> Result<Action, std::convert::Infallible> {
    let claim = Arc::new(cached.get());
    drop(cached);
    let span = tracing::info_span!(
        "claim",
        namespace = claim.namespace().unwrap_or_default(),
        name = %claim.name_any(),
        uid = claim.uid().unwrap_or_default(),
    );
    let key = key_of(claim.as_ref());
    let gauge = ctx
        .metrics
        .in_progress
        .get_or_create(&Metrics::queue("claim"))
        .clone();
    gauge.inc();
    let action = reconcile_inner(claim, &ctx, &key).instrument(span).await;
    gauge.dec();
    ctx.metrics
        .queue_depth
        .get_or_create(&Metrics::queue("claim"))
        .set(ctx.claim_backoff.len() as i64);
    Ok(action)
}

async fn reconcile_inner<P: Provisioner>(
    claim: Arc<PersistentVolumeClaim>,
    ctx: &Ctx<P>,
    key: &str,
) -> Action {
    let mut rv = claim.resource_version().unwrap_or_default();
    if ctx.claim_versions.is_superseded(key, &rv) {
        // Our own later write is on its way through the watch.
        tracing::debug!(resource_version = %rv, "cached claim is older than our last write; skipped");
        return Action::await_change();
    }
    if ctx.claim_backoff.given_up(key, &rv) {
        return Action::await_change();
    }
    let pv_name = (ctx.opts.pv_name)(&claim);
    let class = claim_class(&claim).and_then(|c| ctx.classes.get(&ObjectRef::new(c)));
    let cached = ctx
        .pvs
        .get(&ObjectRef::new(&pv_name))
        .map(|c| Arc::new(c.get()));
    let in_cache = cached.is_some();
    let pv = ctx.saved_pvs.or_saved(&pv_name, cached);
    // A decision made on our own saved PV (not yet cached) is looked at again
    // once that record has expired: the claim loop does not watch PVs, so a
    // PV deleted before the cache showed it would otherwise go unnoticed.
    let stand_in = pv.is_some() && !in_cache;
    let node_gone =
        selected_node(&claim).is_some_and(|n| ctx.nodes.get(&ObjectRef::new(n)).is_none());
    let decision = decide(
        &ctx.scope,
        &claim,
        class.as_deref(),
        pv.as_deref(),
        node_gone,
        Support {
            block: ctx.provisioner.supports_block(),
            data_source: data_source(&claim)
                .is_some_and(|d| ctx.provisioner.supports_data_source(&d)),
        },
        |c, s| ctx.provisioner.should_provision(c, s),
    );
    tracing::debug!(?decision, "decided");
    let w = ClaimWriter::new(ctx, key, &claim.namespace().unwrap_or_default());
    let claim_ref = claim.object_ref(&());
    let step = match decision {
        ClaimDecision::Skip(_) | ClaimDecision::WaitForNode => Step::Done,
        ClaimDecision::NoNode
        | ClaimDecision::ClassMissing(_)
        | ClaimDecision::RejectBlock
        | ClaimDecision::RejectDataSource => {
            let act = outcome::refusal(&decision, &ctx.opts.provisioner_name, key, &claim)
                .expect("a refusing decision");
            perform(ctx, &w, &claim, act).await
        }
        ClaimDecision::ReleaseIntent => release(&w, &claim, |_| Step::Done).await,
        ClaimDecision::Expand(bytes) => {
            let pv = pv.expect("decide checked the PV");
            expand(ctx, &w, &claim, &pv, bytes).await
        }
        ClaimDecision::RecordIntent => {
            match w.add_intent(claim.as_ref()).await {
                // Deleted after the cache showed it: nothing was started, and
                // the deletion arrives on the watch (decided as Deleting).
                Ok(Added::Deleting) => {
                    tracing::info!("claim is being deleted; not provisioning it");
                    Step::Done
                }
                Ok(Added::Added(patched, _)) => {
                    // Our own patch must not count as "the claim changed".
                    rv = patched.resource_version().unwrap_or_default();
                    let class = class.expect("decide checked the class");
                    provision(ctx, &w, Arc::new(patched), &class, &pv_name).await
                }
                Err(e) => Step::Retry(format!("recording provisioning intent on {key}: {e}")),
            }
        }
        ClaimDecision::Provision => {
            let class = class.expect("decide checked the class");
            provision(ctx, &w, claim.clone(), &class, &pv_name).await
        }
        ClaimDecision::CleanupDeleted => cleanup_deleted(ctx, &w, &claim, &pv_name).await,
        ClaimDecision::NodeGone(node) => node_gone_reschedule(ctx, &w, &claim, &node).await,
    };
    let recheck = stand_in_recheck(stand_in, &step);
    let (action, gave_up) = finish(&ctx.claim_backoff, key, &rv, step);
    let action = recheck.map_or(action, Action::requeue);
    if let Some(n) = gave_up {
        ctx.events
            .publish_for(
                &claim_ref,
                Reason::ProvisioningFailed,
                EventAction::GiveUp,
                format!(
                    "giving up on claim {key} after {n} failed attempts (--failed-provision-threshold); see the previous events, fix the cause, then edit the claim or restart the provisioner to retry"
                ),
            )
            .await;
    }
    action
}

/// The claim's selected node is not in the Node cache: confirm with a live
/// read (the cache may not have a new Node yet), then remove the annotation
/// with a patch guarded by the claim's resourceVersion, so that of several
/// instances seeing it at once one patch wins and the rest are refused.
/// The Warning event comes from the instance whose patch won.
async fn node_gone_reschedule<P>(
    ctx: &Ctx<P>,
    w: &ClaimWriter<'_>,
    claim: &PersistentVolumeClaim,
    node: &str,
) -> Step {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    match nodes.get_metadata_opt(node).await {
        // The cache is behind (a new Node): look again shortly.
        Ok(Some(_)) => return Step::Poll,
        Ok(None) => {}
        Err(e) => return Step::Retry(format!("reading Node {node}: {e}")),
    }
    let seen = claim.resource_version().unwrap_or_default();
    match w.reschedule(claim, reschedule_patch(&seen, None)).await {
        Ok(_) => {
            ctx.events
                .publish_for(
                    &claim.object_ref(&()),
                    Reason::ProvisioningFailed,
                    EventAction::Reschedule,
                    format!(
                        "the node {node:?} selected for claim {} no longer exists; removed {} so the scheduler picks another node",
                        key_of(claim),
                        a::SELECTED_NODE
                    ),
                )
                .await;
            Step::Done
        }
        // Gone, or changed since read (another instance removed the
        // annotation first): the newer version is reconciled.
        Err(e) if is_status(&e, 404) || is_status(&e, 409) || is_status(&e, 422) => Step::Done,
        Err(e) => Step::Retry(format!("removing the selected node of a deleted Node: {e}")),
    }
}

/// Grows the backend volume, then the PV's capacity, then the claim's
/// `status.capacity` (in that order: a crash in between is finished by the
/// next reconcile, since the PV still looks too small or the claim's status
/// lags; `expand` must be idempotent).
async fn expand<P: Provisioner>(
    ctx: &Ctx<P>,
    w: &ClaimWriter<'_>,
    claim: &PersistentVolumeClaim,
    pv: &PersistentVolume,
    bytes: u64,
) -> Step {
    let claim_ref = claim.object_ref(&());
    let pv_name = pv.name_any();
    let request = claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned()
        .expect("expansion_needed read the request");
    if let Err(e) = ctx.provisioner.expand(pv, bytes).await {
        let msg = format!("expanding volume {pv_name} to {}: {e}", request.0);
        ctx.events
            .publish(&claim_ref, Reason::VolumeResizeFailed, msg.clone())
            .await;
        return match e {
            ProvisionError::Infeasible(_) => Step::Slow(msg),
            _ => Step::Retry(msg),
        };
    }
    let capacity = json!({"storage": request.0});
    // Until the PV cache has it, decisions use the raised capacity.
    if let Err(e) = w.pv_capacity(&pv_name, &capacity).await {
        return Step::Retry(format!("raising the capacity of PV {pv_name}: {e}"));
    }
    if let Err(e) = w.claim_capacity(claim, &capacity).await {
        return Step::Retry(format!("updating the claim's status.capacity: {e}"));
    }
    ctx.events
        .publish(
            &claim_ref,
            Reason::VolumeResizeSuccessful,
            format!("volume {pv_name} expanded to {}", request.0),
        )
        .await;
    Step::Done
}

/// Removes the intent finalizer (if the claim has it), then `then` of the
/// resourceVersion its patch made (`None`: no patch was needed).
async fn release(
    w: &ClaimWriter<'_>,
    claim: &PersistentVolumeClaim,
    then: impl FnOnce(Option<String>) -> Step,
) -> Step {
    match w.release_intent(claim).await {
        Ok(at) => then(at),
        Err(e) => Step::Retry(format!("releasing provisioning intent: {e}")),
    }
}

/// Performs `act` (see [`Act`]): publish, write, step. Decides nothing.
async fn perform<P>(
    ctx: &Ctx<P>,
    w: &ClaimWriter<'_>,
    claim: &PersistentVolumeClaim,
    act: Act,
) -> Step {
    let publish = |e: Event| async move {
        ctx.events
            .publish_for(&claim.object_ref(&()), e.reason, e.action, e.note)
            .await
    };
    match act {
        Act::Finish(event, step) => {
            if let Some(e) = event {
                publish(e).await;
            }
            step
        }
        Act::Release(event) => {
            if let Some(e) = event {
                publish(e).await;
            }
            release(w, claim, |_| Step::Done).await
        }
        Act::GiveUp(e) => {
            let msg = e.note.clone();
            publish(e).await;
            release(w, claim, |at| Step::Final { msg, at }).await
        }
        Act::Reschedule(e) => {
            publish(e).await;
            let idx = claim
                .finalizers()
                .iter()
                .position(|f| f == a::PROVISIONING_FINALIZER);
            // guarded by the claim's own resourceVersion
            let patch = reschedule_patch(&claim.resource_version().unwrap_or_default(), idx);
            match w.reschedule(claim, patch).await {
                Ok(_) => Step::Done,
                Err(e) if is_status(&e, 404) => Step::Done,
                Err(e) => Step::Retry(format!("removing the selected node: {e}")),
            }
        }
    }
}

fn options(
    scope: &Scope,
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    pv_name: &str,
) -> ProvisionOptions {
    ProvisionOptions {
        storage_class: class.clone(),
        claim: claim.clone(),
        pv_name: pv_name.to_string(),
        selected_node: target_node(scope, claim, Some(class)).map(str::to_string),
        node_hostname: scope.node_hostname.clone(),
    }
}

/// Provision the claim, save its PV, release the intent; on a failure, the
/// [`outcome`](super::outcome) of it is performed.
async fn provision<P: Provisioner>(
    ctx: &Ctx<P>,
    w: &ClaimWriter<'_>,
    claim: Arc<PersistentVolumeClaim>,
    class: &StorageClass,
    pv_name: &str,
) -> Step {
    let key = key_of(claim.as_ref());
    let class_name = class.name_any();
    let label = Metrics::class(&class_name);
    let claim_ref = claim.object_ref(&());
    let count_failure = || {
        ctx.metrics
            .provision_failed_total
            .get_or_create(&label)
            .inc();
    };
    if ctx.opts.provisioning_event {
        ctx.events
            .publish(
                &claim_ref,
                Reason::Provisioning,
                format!("External provisioner is provisioning volume for claim \"{key}\""),
            )
            .await;
    }
    let started = Instant::now();
    let result = ctx
        .provisioner
        .provision(options(&ctx.scope, &claim, class, pv_name))
        .await;
    let provisioned = match result {
        Ok(p) => p,
        Err(e) => {
            let (act, counted) = outcome::provision_failed(&e, selected_node(&claim), &class_name);
            if counted {
                count_failure();
            }
            return perform(ctx, w, &claim, act).await;
        }
    };

    let pv = build_pv(pv_name, &claim, class, provisioned, ctx.opts.add_finalizer);
    if super::pv::drops_class_mount_options(&pv, class) {
        ctx.events
            .publish(
                &claim_ref,
                Reason::MountOptionsIgnored,
                format!(
                    "StorageClass \"{class_name}\" has mountOptions, but the volumes of {} cannot be mounted with options (the kubelet refuses them for this volume type); PV {pv_name} is made without them: remove mountOptions from the class",
                    ctx.opts.provisioner_name
                ),
            )
            .await;
    }
    let saved = match super::pv::misfit(&pv, &claim) {
        Some(misfit) => Err(Unsaved::Refused(format!(
            "the volume {} made for claim {key} does not fit it ({misfit}), so the PV controller would never bind it",
            ctx.opts.provisioner_name
        ))),
        None => w
            .create_pv(&pv, &claim)
            .await
            .map_err(|e| outcome::unsaved(pv_name, &e)),
    };
    if let Err(why) = saved {
        count_failure();
        let deleted = ctx.provisioner.delete(&pv).await;
        let act = outcome::after_unsaved(pv_name, &why, deleted.as_ref().map(|_| ()));
        return perform(ctx, w, &claim, act).await;
    }
    ctx.metrics.provision_total.get_or_create(&label).inc();
    ctx.metrics
        .provision_duration
        .get_or_create(&label)
        .observe(started.elapsed().as_secs_f64());
    ctx.events
        .publish(
            &claim_ref,
            Reason::ProvisioningSucceeded,
            format!("Successfully provisioned volume {pv_name}"),
        )
        .await;
    tracing::info!(pv = pv_name, "provisioned");
    release(w, &claim, |_| Step::Done).await
}

/// A claim deleted mid-provisioning: release it if its PV was saved (read
/// live: the cache may lag), else make its volume again (`provision` is
/// idempotent) and delete it, then release.
async fn cleanup_deleted<P: Provisioner>(
    ctx: &Ctx<P>,
    w: &ClaimWriter<'_>,
    claim: &PersistentVolumeClaim,
    pv_name: &str,
) -> Step {
    let key = key_of(claim);
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let live = pvs.get_opt(pv_name).await;
    let class_name = claim_class(claim).unwrap_or_default().to_string();
    let class = ctx.classes.get(&ObjectRef::new(&class_name));
    let act = match outcome::deleted_claim(&key, claim, pv_name, &class_name, live, class) {
        Deleted::Act(act) => act,
        Deleted::Remake(class) => {
            tracing::info!(
                pv = pv_name,
                "claim deleted mid-provisioning; cleaning up its backend volume"
            );
            match ctx
                .provisioner
                .provision(options(&ctx.scope, claim, &class, pv_name))
                .await
            {
                Ok(p) => {
                    let pv = build_pv(pv_name, claim, &class, p, false);
                    let deleted = ctx.provisioner.delete(&pv).await;
                    outcome::after_cleanup_delete(&key, pv_name, deleted.as_ref().map(|_| ()))
                }
                Err(e) => outcome::after_cleanup_provision_failed(&e),
            }
        }
    };
    perform(ctx, w, claim, act).await
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
}
