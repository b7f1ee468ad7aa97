//! Performing a claim's decision: the kube-runtime entry point for claims.
//!
//! [`super::claim::decide`] says what a claim needs (pure, tested there);
//! this module reads what the decision needs from the caches, makes the
//! API calls through [`ClaimWriter`], calls the provisioner, and turns each
//! result into the next step with [`super::outcome`]. Kept apart from the
//! decisions so that `outcome` can use the decision types without the two
//! modules importing each other.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::Instrument;

use super::claim::*;
use super::finalizers::{is_status, Added};
use super::outcome::{self, Act, Deleted, Event, Unsaved};
use super::own_writes::ClaimWriter;
use super::step::{counted, finish, key_of, stand_in_recheck, Step};
use super::{pv::build_pv, Ctx, Scope};
use crate::annotations as a;
use crate::events::{Action as EventAction, Reason};
use crate::metrics::Metrics;
use crate::provisioner::{ProvisionError, ProvisionOptions, Provisioner};

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
    let work = reconcile_inner(claim, &ctx, &key).instrument(span);
    Ok(counted(&ctx.metrics, "claim", &ctx.claim_backoff, work).await)
}

async fn reconcile_inner<P: Provisioner>(
    claim: Arc<PersistentVolumeClaim>,
    ctx: &Arc<Ctx<P>>,
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
            records_intent: ctx.provisioner.intent_records().is_some(),
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
        // Our own release of it is under way (module `release`): look again
        // once it is done rather than send a second one.
        ClaimDecision::ReleaseIntent if ctx.releases.is_pending(key) => Step::Poll,
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
    ctx: &Arc<Ctx<P>>,
    w: &ClaimWriter<'_>,
    claim: Arc<PersistentVolumeClaim>,
    class: &StorageClass,
    pv_name: &str,
) -> Step {
    let key = key_of(claim.as_ref());
    let class_name = class.name_any();
    let label = Metrics::class(&class_name);
    let claim_ref = claim.object_ref(&());
    // Held until the record is marked saved: the intent sweep leaves a
    // volume alone while its PV save is retried (module `intent_sweep`).
    let _place = match ctx.provisioner.intent_records() {
        Some(_) => match ctx.in_flight.try_enter(pv_name) {
            Some(place) => Some(place),
            None => {
                return Step::Retry(format!(
                    "the intent sweep is checking volume {pv_name} right now"
                ))
            }
        },
        None => None,
    };
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
    if let Some(records) = ctx.provisioner.intent_records() {
        // The backend's record leaves "pending": the intent sweep never
        // touches it again. A mark that fails is made by the sweep, which
        // finds the PV saved.
        if let Err(error) = records.mark_saved(pv_name).await {
            tracing::warn!(pv = pv_name, %error, "marking the backend's intent record saved failed; the intent sweep marks it");
        }
    }
    if !has_intent(&claim) {
        return Step::Done;
    }
    // Waiting for a slot here is the backpressure (module `release`).
    let slot = ctx.releases.slot().await;
    ctx.releases.spawn(
        &key,
        release_saved(Arc::clone(ctx), claim, key.clone(), slot).in_current_span(),
    );
    Step::Done
}

/// Attempts of [`release_saved`] before it leaves the release to the
/// claim's next reconcile.
const RELEASE_ATTEMPTS: u32 = 5;

/// Releases the intent of `claim`, whose PV is saved (run beside the
/// workers, module `release`; `slot` is its place among the requests in
/// flight), retried with the claim backoff's delays, without a slot while
/// it waits. A release that still fails is left to the claim's next
/// reconcile, which finds intent and PV together
/// (`ClaimDecision::ReleaseIntent`).
async fn release_saved<P: Provisioner>(
    ctx: Arc<Ctx<P>>,
    claim: Arc<PersistentVolumeClaim>,
    key: String,
    slot: super::release::Slot,
) {
    let w = ClaimWriter::new(&ctx, &key, &claim.namespace().unwrap_or_default());
    let mut delay = ctx.opts.retry_interval_start;
    let mut slot = Some(slot);
    for attempt in 1..=RELEASE_ATTEMPTS {
        let held = match slot.take() {
            Some(s) => s,
            None => ctx.releases.slot().await,
        };
        let result = w.release_intent(&claim).await;
        drop(held);
        let Err(error) = result else { return };
        tracing::warn!(attempt, %error, retry_in = ?delay, "releasing provisioning intent failed");
        if attempt == RELEASE_ATTEMPTS {
            break;
        }
        // A stop ends this task here too (`Releases::spawn`).
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(ctx.opts.retry_interval_max);
    }
    tracing::warn!("provisioning intent not released; the claim's next reconcile releases it");
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
