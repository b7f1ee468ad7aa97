//! The volume loop: which PVs are ours to delete, and deleting them.
//!
//! [`decide`] is a pure function of the PV; `reconcile` does the API calls.
//! `Retain` and bound volumes are never touched; the optional PV finalizer is
//! added and removed with guarded JSON patches, never with updates.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::Instrument;

use super::finalizers::{add_finalizer, is_status, remove_finalizer};
use super::step::{counted, finish, key_of, Step};
use super::{Ctx, Scope};
use crate::annotations as a;
use crate::events::{Action as EventAction, Reason};
use crate::metrics::Metrics;
use crate::provisioner::{DeleteError, Provisioner};

/// Whether a PV was made (or migrated) by one of our names.
pub fn is_ours(scope: &Scope, pv: &PersistentVolume) -> bool {
    let Some(ann) = pv.metadata.annotations.as_ref() else {
        return false;
    };
    [a::PROVISIONED_BY, a::MIGRATED_TO]
        .iter()
        .filter_map(|k| ann.get(*k))
        .any(|v| scope.is_ours(v))
}

/// Whether the PV's node affinity names our node: a required term with an
/// `In` expression on `kubernetes.io/hostname` listing our `hostname` label
/// value (what we write, and what the scheduler matches), or listing our
/// node `name` (under any key, or a `metadata.name` field selector: what
/// earlier versions wrote; still ours to delete).
pub fn affinity_names_node(pv: &PersistentVolume, name: &str, hostname: &str) -> bool {
    let Some(terms) = pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|n| n.required.as_ref())
        .map(|r| &r.node_selector_terms)
    else {
        return false;
    };
    terms.iter().any(|t| {
        let listed = |reqs: &Option<Vec<k8s_openapi::api::core::v1::NodeSelectorRequirement>>,
                      ok: &dyn Fn(&str, &str) -> bool| {
            reqs.iter()
                .flatten()
                .any(|r| r.operator == "In" && r.values.iter().flatten().any(|v| ok(&r.key, v)))
        };
        listed(&t.match_expressions, &|key, v| {
            v == name || (key == a::HOSTNAME_LABEL && v == hostname)
        }) || listed(&t.match_fields, &|_, v| v == name)
    })
}

fn phase(pv: &PersistentVolume) -> Option<&str> {
    pv.status.as_ref()?.phase.as_deref()
}

fn policy(pv: &PersistentVolume) -> &str {
    pv.spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain")
}

fn has_finalizer(pv: &PersistentVolume) -> bool {
    pv.finalizers().iter().any(|f| f == a::PV_FINALIZER)
}

/// Why a PV needs nothing from us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not provisioned by (nor migrated to) one of our names.
    NotOurs,
    /// Node-local mode and the affinity names another node (or none).
    OtherNode,
    /// Reclaim policy is not `Delete`.
    NotDeletePolicy,
    /// Not `Released` (e.g. Bound, Available, Pending).
    NotReleased,
    /// The provisioner's `should_delete` declined.
    Guard,
    /// Being deleted (a `deletionTimestamp`) without our finalizer: we
    /// deleted it already, and `kubernetes.io/pv-protection` (or another
    /// finalizer) holds it a little longer; not deleted a second time.
    Deleting,
}

/// What to do with a PV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VolumeDecision {
    /// Leave the PV alone, for the reason given.
    Skip(Skip),
    /// Add the PV finalizer (`--add-finalizer`).
    AddFinalizer,
    /// Delete the backend volume, then the PV, then the finalizer.
    Delete,
    /// Remove the PV finalizer: it no longer protects anything (policy is
    /// not Delete).
    RemoveFinalizer,
}

/// Decide what a PV needs. `add_finalizer` is the `--add-finalizer` flag;
/// `guard` is the provisioner's `should_delete`.
pub fn decide(
    scope: &Scope,
    pv: &PersistentVolume,
    add_finalizer: bool,
    guard: impl FnOnce(&PersistentVolume) -> bool,
) -> VolumeDecision {
    use VolumeDecision as D;
    if !is_ours(scope, pv) {
        return D::Skip(Skip::NotOurs);
    }
    if let (Some(node), Some(hostname)) = (&scope.node_name, scope.hostname()) {
        if !affinity_names_node(pv, node, hostname) {
            return D::Skip(Skip::OtherNode);
        }
    }
    if policy(pv) != "Delete" {
        return if has_finalizer(pv) {
            D::RemoveFinalizer
        } else {
            D::Skip(Skip::NotDeletePolicy)
        };
    }
    if pv.metadata.deletion_timestamp.is_some() && !has_finalizer(pv) {
        // Like the Go library: a PV being deleted is not deleted again;
        // with our finalizer on it, the deletion is ours to finish.
        return D::Skip(Skip::Deleting);
    }
    if phase(pv) == Some("Released") {
        return if guard(pv) {
            D::Delete
        } else {
            D::Skip(Skip::Guard)
        };
    }
    if add_finalizer && !has_finalizer(pv) && pv.metadata.deletion_timestamp.is_none() {
        return D::AddFinalizer;
    }
    D::Skip(Skip::NotReleased)
}

/// Reconcile one PV (the kube-runtime entry point).
pub(crate) async fn reconcile<P: Provisioner>(
    cached: Arc<super::compact::Compact<PersistentVolume>>,
    ctx: Arc<Ctx<P>>,
) -> Result<Action, std::convert::Infallible> {
    let pv = Arc::new(cached.get());
    drop(cached);
    let span = tracing::info_span!("volume", name = %pv.name_any());
    let key = key_of(pv.as_ref());
    let work = reconcile_inner(pv, &ctx, &key).instrument(span);
    Ok(counted(&ctx.metrics, "volume", &ctx.volume_backoff, work).await)
}

async fn reconcile_inner<P: Provisioner>(
    pv: Arc<PersistentVolume>,
    ctx: &Ctx<P>,
    key: &str,
) -> Action {
    let rv = pv.resource_version().unwrap_or_default();
    if ctx.volume_backoff.given_up(key, &rv) {
        return Action::await_change();
    }
    let decision = decide(&ctx.scope, &pv, ctx.opts.add_finalizer, |p| {
        ctx.provisioner.should_delete(p)
    });
    tracing::debug!(?decision, "decided");
    let api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let step = match decision {
        VolumeDecision::Skip(_) => Step::Done,
        VolumeDecision::AddFinalizer => {
            match add_finalizer(&api, pv.as_ref(), a::PV_FINALIZER).await {
                Ok(_) => Step::Done,
                Err(e) => Step::Retry(format!("adding finalizer: {e}")),
            }
        }
        VolumeDecision::RemoveFinalizer => {
            match remove_finalizer(&api, pv.as_ref(), a::PV_FINALIZER).await {
                Ok(_) => Step::Done,
                Err(e) => Step::Retry(format!("removing finalizer: {e}")),
            }
        }
        VolumeDecision::Delete => delete(ctx, &api, &pv).await,
    };
    let (action, gave_up) = finish(&ctx.volume_backoff, key, &rv, step);
    if let Some(n) = gave_up {
        ctx.events
            .publish_for(
                &pv.object_ref(&()),
                Reason::VolumeFailedDelete,
                EventAction::GiveUp,
                format!(
                    "giving up on deleting volume {key} after {n} failed attempts (--failed-delete-threshold); fix the cause, then edit the PV or restart the provisioner to retry"
                ),
            )
            .await;
    }
    action
}

async fn delete<P: Provisioner>(
    ctx: &Ctx<P>,
    api: &Api<PersistentVolume>,
    pv: &PersistentVolume,
) -> Step {
    let name = pv.name_any();
    let class = pv
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default();
    let label = Metrics::class(&class);
    let started = Instant::now();
    // Defence in depth: a PV must not be Released while its claim (same UID)
    // still exists. The PV controller double-checks this too; a stale or
    // buggy binder must not make us destroy data in use.
    if let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
        if let (Some(ns), Some(claim_name)) = (r.namespace.as_deref(), r.name.as_deref()) {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
            match claims.get_opt(claim_name).await {
                Ok(Some(c)) if r.uid.is_none() || c.metadata.uid == r.uid => {
                    tracing::warn!(
                        claim = %format!("{ns}/{claim_name}"),
                        "PV is Released but its claim still exists; not deleting"
                    );
                    return Step::Slow(format!(
                        "claim {ns}/{claim_name} of Released PV {name} still exists"
                    ));
                }
                Ok(_) => {}
                Err(e) => return Step::Retry(format!("checking claim {ns}/{claim_name}: {e}")),
            }
        }
    }
    match ctx.provisioner.delete(pv).await {
        Ok(()) => {}
        Err(DeleteError::InProgress(msg)) => {
            tracing::info!(%msg, "deletion in progress");
            return Step::Poll;
        }
        Err(DeleteError::Ignored(msg)) => {
            tracing::debug!(%msg, "provisioner ignored the volume");
            return Step::Done;
        }
        Err(e) => {
            ctx.metrics.delete_failed_total.get_or_create(&label).inc();
            let msg = format!(
                "failed to delete the backend volume of {name}: {e}; the PV is kept and deletion retried; fix the backend or set persistentVolumeReclaimPolicy: Retain to keep the data"
            );
            ctx.events
                .publish(&pv.object_ref(&()), Reason::VolumeFailedDelete, msg.clone())
                .await;
            return Step::Retry(msg);
        }
    }
    tracing::info!("backend volume deleted");
    // Already being deleted (our finalizer held it): only the finalizer is left.
    if pv.metadata.deletion_timestamp.is_none() {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(e) => {
                ctx.metrics.delete_failed_total.get_or_create(&label).inc();
                return Step::Retry(format!("deleting PersistentVolume {name}: {e}"));
            }
        }
    }
    if has_finalizer(pv) {
        if let Err(e) = remove_finalizer(api, pv, a::PV_FINALIZER).await {
            return Step::Retry(format!("removing finalizer of {name}: {e}"));
        }
    }
    ctx.metrics.delete_total.get_or_create(&label).inc();
    ctx.metrics
        .delete_duration
        .get_or_create(&label)
        .observe(started.elapsed().as_secs_f64());
    Step::Done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;

    const P: &str = "example.com/p";

    fn scope() -> Scope {
        Scope {
            names: vec![P.into(), "old/p".into()],
            node_name: None,
            node_hostname: None,
        }
    }

    fn d(pv: &PersistentVolume) -> VolumeDecision {
        decide(&scope(), pv, false, |_| true)
    }

    #[test]
    fn released_delete_ours_is_deleted() {
        let v = pv("v").provisioned_by(P).phase("Released").build();
        assert_eq!(d(&v), VolumeDecision::Delete);
    }

    #[test]
    fn migrated_to_and_additional_names_count_as_ours() {
        let v = pv("v").migrated_to(P).phase("Released").build();
        assert_eq!(d(&v), VolumeDecision::Delete);
        let v = pv("v").provisioned_by("old/p").phase("Released").build();
        assert_eq!(d(&v), VolumeDecision::Delete);
    }

    #[test]
    fn not_ours_is_skipped() {
        let v = pv("v").provisioned_by("other").phase("Released").build();
        assert_eq!(d(&v), VolumeDecision::Skip(Skip::NotOurs));
        let v = pv("v").phase("Released").build();
        assert_eq!(d(&v), VolumeDecision::Skip(Skip::NotOurs));
    }

    #[test]
    fn bound_and_retain_are_never_touched() {
        let v = pv("v").provisioned_by(P).phase("Bound").build();
        assert_eq!(d(&v), VolumeDecision::Skip(Skip::NotReleased));
        let v = pv("v")
            .provisioned_by(P)
            .phase("Released")
            .policy("Retain")
            .build();
        assert_eq!(d(&v), VolumeDecision::Skip(Skip::NotDeletePolicy));
        let v = pv("v").provisioned_by(P).phase("Bound").deleting().build();
        assert_eq!(d(&v), VolumeDecision::Skip(Skip::Deleting));
    }

    #[test]
    fn a_released_pv_being_deleted_is_not_deleted_again() {
        // pv-protection holds the PV we deleted: it comes back Released
        // with a deletionTimestamp.
        let held = pv("v")
            .provisioned_by(P)
            .phase("Released")
            .deleting()
            .finalizer("kubernetes.io/pv-protection")
            .build();
        assert_eq!(d(&held), VolumeDecision::Skip(Skip::Deleting));
        assert_eq!(
            decide(&scope(), &held, true, |_| true),
            VolumeDecision::Skip(Skip::Deleting)
        );
    }

    #[test]
    fn guard_can_keep_a_volume() {
        let v = pv("v").provisioned_by(P).phase("Released").build();
        assert_eq!(
            decide(&scope(), &v, false, |_| false),
            VolumeDecision::Skip(Skip::Guard)
        );
    }

    #[test]
    fn finalizer_added_when_enabled_and_removed_for_retain() {
        let v = pv("v").provisioned_by(P).phase("Bound").build();
        assert_eq!(
            decide(&scope(), &v, true, |_| true),
            VolumeDecision::AddFinalizer
        );
        let v = pv("v")
            .provisioned_by(P)
            .phase("Bound")
            .finalizer(a::PV_FINALIZER)
            .build();
        assert_eq!(
            decide(&scope(), &v, true, |_| true),
            VolumeDecision::Skip(Skip::NotReleased)
        );
        let v = pv("v")
            .provisioned_by(P)
            .policy("Retain")
            .finalizer(a::PV_FINALIZER)
            .build();
        assert_eq!(d(&v), VolumeDecision::RemoveFinalizer);
        // a Released, deleting PV with our finalizer is deleted (then released)
        let v = pv("v")
            .provisioned_by(P)
            .phase("Released")
            .deleting()
            .finalizer(a::PV_FINALIZER)
            .build();
        assert_eq!(d(&v), VolumeDecision::Delete);
    }

    #[test]
    fn node_local_deletes_only_its_node() {
        let v = pv("v")
            .provisioned_by(P)
            .phase("Released")
            .node_affinity(a::HOSTNAME_LABEL, "n1")
            .build();
        let n1 = Scope {
            node_name: Some("n1".into()),
            ..scope()
        };
        let n2 = Scope {
            node_name: Some("n2".into()),
            ..scope()
        };
        assert_eq!(decide(&n1, &v, false, |_| true), VolumeDecision::Delete);
        assert_eq!(
            decide(&n2, &v, false, |_| true),
            VolumeDecision::Skip(Skip::OtherNode)
        );
        let no_affinity = pv("v").provisioned_by(P).phase("Released").build();
        assert_eq!(
            decide(&n1, &no_affinity, false, |_| true),
            VolumeDecision::Skip(Skip::OtherNode)
        );
    }
    #[test]
    fn node_local_matches_the_hostname_label_and_legacy_name_terms() {
        let fqdn = Scope {
            node_name: Some("n1.example.com".into()),
            node_hostname: Some("n1".into()),
            ..scope()
        };
        let by_label = pv("v")
            .provisioned_by(P)
            .phase("Released")
            .node_affinity(a::HOSTNAME_LABEL, "n1")
            .build();
        assert_eq!(
            decide(&fqdn, &by_label, false, |_| true),
            VolumeDecision::Delete
        );
        // Written by earlier versions: the node name as the hostname value.
        let legacy = pv("v")
            .provisioned_by(P)
            .phase("Released")
            .node_affinity(a::HOSTNAME_LABEL, "n1.example.com")
            .build();
        assert_eq!(
            decide(&fqdn, &legacy, false, |_| true),
            VolumeDecision::Delete
        );
        // Another key with our short hostname is not ours.
        let other_key = pv("v")
            .provisioned_by(P)
            .phase("Released")
            .node_affinity("example.com/rack", "n1")
            .build();
        assert_eq!(
            decide(&fqdn, &other_key, false, |_| true),
            VolumeDecision::Skip(Skip::OtherNode)
        );
    }
}
