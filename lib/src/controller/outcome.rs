//! The claim loop's choices after an API or provisioner call answered, as
//! pure functions: which event, which step, whether to release the intent.
//!
//! Why: the claim loop's act phase (now `claim_loop.rs`) used to map each
//! `ProvisionError`, each PV save failure and each cleanup result to
//! events, patches and retries inline, so those choices were only tested
//! through a whole control plane.
//! Here each is a table-tested function returning an [`Act`], and
//! `claim_loop.rs` performs an `Act` in one `match` that decides nothing.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

use super::claim::{claim_class, data_source, pv_is_for, ClaimDecision};
use super::own_writes::SaveError;
use super::step::Step;
use crate::annotations as a;
use crate::events::{Action as EventAction, Reason};
use crate::provisioner::{DeleteError, ProvisionError};

/// An event to publish about the claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    /// Its reason.
    pub(crate) reason: Reason,
    /// Its action ([`EventAction::Default`] for a plain `publish`).
    pub(crate) action: EventAction,
    /// Its note.
    pub(crate) note: String,
}

impl Event {
    fn new(reason: Reason, action: EventAction, note: String) -> Self {
        Self {
            reason,
            action,
            note,
        }
    }
}

/// What the act phase does, in this order: publish the event (if any),
/// then the write (if any), then end the reconcile with the step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Act {
    /// Publish the event, if any, and end with the step.
    Finish(Option<Event>, Step),
    /// Publish the event, if any, then release the intent: `Done`, or the
    /// step of a failed release.
    Release(Option<Event>),
    /// Publish the event, release the intent, and give up on the claim
    /// until it changes (`Step::Final` with the event's note).
    GiveUp(Event),
    /// Publish the event, then remove the selected node (and the intent)
    /// with the reschedule patch.
    Reschedule(Event),
}

/// The act of a decision that refuses the claim (`NoNode`, `ClassMissing`,
/// `RejectBlock`, `RejectDataSource`): a Warning saying what to fix, then a
/// slow retry, a retry, or (nothing was started) the intent released.
/// `None` for every other decision. `provisioner` is our name, `key` the
/// claim's.
pub(crate) fn refusal(
    decision: &ClaimDecision,
    provisioner: &str,
    key: &str,
    claim: &PersistentVolumeClaim,
) -> Option<Act> {
    let failed = |action, note: String| Event::new(Reason::ProvisioningFailed, action, note);
    Some(match decision {
        ClaimDecision::NoNode => {
            let msg = format!(
                "{provisioner} runs one instance per node and cannot choose a node for claim {key}: its StorageClass {:?} uses Immediate binding without naming a node; use volumeBindingMode: WaitForFirstConsumer, or allowedTopologies with one {} value",
                claim_class(claim).unwrap_or_default(),
                a::HOSTNAME_LABEL,
            );
            Act::Finish(
                Some(failed(EventAction::NodeSelection, msg.clone())),
                Step::Slow(msg),
            )
        }
        ClaimDecision::ClassMissing(name) => {
            let msg = format!(
                "StorageClass {name:?} of claim {key} not found; create the class or fix the claim's storageClassName"
            );
            Act::Finish(
                Some(failed(EventAction::ClassLookup, msg.clone())),
                Step::Retry(msg),
            )
        }
        ClaimDecision::RejectBlock => Act::Release(Some(failed(
            EventAction::VolumeModeCheck,
            format!(
                "{provisioner} does not support block volumes; use volumeMode: Filesystem or a class of a provisioner that supports Block"
            ),
        ))),
        ClaimDecision::RejectDataSource => {
            let source = data_source(claim).unwrap_or_default();
            Act::Release(Some(failed(
                EventAction::DataSourceCheck,
                format!(
                    "{provisioner} cannot fill a volume from the claim's data source ({} {:?}{}); no volume is made rather than an empty one: remove dataSource/dataSourceRef, or use a class of a provisioner that supports it",
                    source.kind,
                    source.name,
                    source
                        .api_group
                        .map(|g| format!(" in API group {g}"))
                        .unwrap_or_default(),
                ),
            )))
        }
        _ => return None,
    })
}

/// What `provision` answering `e` leads to, for a claim whose selected node
/// is `selected_node` and whose class is `class_name`; `true` when it counts
/// as a provisioning failure (metric `provision_failed_total`).
pub(crate) fn provision_failed(
    e: &ProvisionError,
    selected_node: Option<&str>,
    class_name: &str,
) -> (Act, bool) {
    match (e, selected_node) {
        (ProvisionError::InProgress(msg), _) => {
            tracing::info!(%msg, "provisioning in progress");
            (Act::Finish(None, Step::Poll), false)
        }
        (ProvisionError::Ignored(msg), _) => {
            tracing::debug!(%msg, "provisioner ignored the claim");
            (Act::Release(None), false)
        }
        (ProvisionError::Reschedule(msg), Some(node)) => (
            Act::Reschedule(Event::new(
                Reason::ProvisioningFailed,
                EventAction::Reschedule,
                format!(
                    "cannot provision on node {node:?}: {msg}; asking the scheduler to pick another node"
                ),
            )),
            false,
        ),
        (e, _) => {
            let msg = format!("failed to provision volume with StorageClass \"{class_name}\": {e}");
            let event = Event::new(Reason::ProvisioningFailed, EventAction::Default, msg.clone());
            let step = if matches!(e, ProvisionError::Infeasible(_)) {
                Step::Slow(msg)
            } else {
                Step::Retry(msg)
            };
            (Act::Finish(Some(event), step), true)
        }
    }
}

/// Why a made volume's PV was not saved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Unsaved {
    /// It must not be saved and a retry repeats that (the reason, said in
    /// full): delete the volume once and give up until the claim changes.
    Refused(String),
    /// Saving it failed after the retries (the error): delete the volume and
    /// retry provisioning.
    Failed(String),
}

/// The [`Unsaved`] of a failed PV save.
pub(crate) fn unsaved(pv_name: &str, e: &SaveError) -> Unsaved {
    match e {
        SaveError::Invalid(status) => Unsaved::Refused(format!(
            "the API server refused PersistentVolume {pv_name} as invalid: {status}"
        )),
        SaveError::Failed(e) => Unsaved::Failed(e.clone()),
    }
}

/// What follows deleting the backend volume of PV `pv_name` that was not
/// saved (`why`), when `delete` answered `deleted`.
pub(crate) fn after_unsaved(
    pv_name: &str,
    why: &Unsaved,
    deleted: Result<(), &DeleteError>,
) -> Act {
    let save = EventAction::SavePersistentVolume;
    let keeps = a::PROVISIONING_FINALIZER;
    match (why, deleted) {
        (Unsaved::Refused(why), Ok(()) | Err(DeleteError::Ignored(_))) => Act::GiveUp(Event::new(
            Reason::ProvisioningFailed,
            save,
            format!(
                "{why}; deleted the backend volume {pv_name}; not retried until the claim changes: fix the provisioner or the StorageClass, then edit the claim or restart the provisioner"
            ),
        )),
        (Unsaved::Refused(_), Err(DeleteError::InProgress(msg))) => {
            tracing::info!(%msg, "deleting the refused volume is in progress");
            Act::Finish(None, Step::Poll)
        }
        (Unsaved::Refused(why), Err(e)) => {
            let msg = format!(
                "{why}; deleting its backend volume {pv_name} failed too ({e}); the claim keeps finalizer {keeps} and cleanup is retried; if you remove it by hand, delete the backend volume of {pv_name} manually"
            );
            let event = Event::new(Reason::ProvisioningCleanupFailed, save, msg.clone());
            Act::Finish(Some(event), Step::Retry(msg))
        }
        (Unsaved::Failed(save_err), Ok(())) => {
            let msg = format!(
                "failed to save PersistentVolume {pv_name} ({save_err}); deleted the backend volume and will retry provisioning"
            );
            let event = Event::new(Reason::ProvisioningFailed, save, msg.clone());
            Act::Finish(Some(event), Step::Retry(msg))
        }
        (Unsaved::Failed(save_err), Err(del_err)) => {
            let msg = format!(
                "failed to save PersistentVolume {pv_name} ({save_err}) and to delete its backend volume ({del_err}); the claim keeps finalizer {keeps} and cleanup is retried; if you remove it by hand, delete the backend volume of {pv_name} manually"
            );
            let event = Event::new(Reason::ProvisioningCleanupFailed, save, msg.clone());
            Act::Finish(Some(event), Step::Retry(msg))
        }
    }
}

/// For a claim deleted mid-provisioning (`key`): what follows deleting the
/// backend volume of `pv_name` that `provision` returned again.
pub(crate) fn after_cleanup_delete(
    key: &str,
    pv_name: &str,
    deleted: Result<(), &DeleteError>,
) -> Act {
    match deleted {
        Ok(()) | Err(DeleteError::Ignored(_)) => Act::Release(None),
        Err(DeleteError::InProgress(_)) => Act::Finish(None, Step::Poll),
        Err(e) => {
            let msg = format!(
                "claim {key} was deleted while being provisioned; deleting its backend volume {pv_name} failed: {e}; retrying"
            );
            let event = Event::new(
                Reason::ProvisioningCleanupFailed,
                EventAction::Cleanup,
                msg.clone(),
            );
            Act::Finish(Some(event), Step::Retry(msg))
        }
    }
}

/// For a claim deleted mid-provisioning: what `provision` failing with `e`
/// leads to (every error but `InProgress` promises no backend volume).
pub(crate) fn after_cleanup_provision_failed(e: &ProvisionError) -> Act {
    match e {
        ProvisionError::InProgress(_) => Act::Finish(None, Step::Poll),
        _ => Act::Release(None),
    }
}

/// What a claim deleted mid-provisioning (`key`) needs, once its PV was
/// read live and its class (`class_name`) looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Deleted<C> {
    /// Decided: perform this.
    Act(Act),
    /// No PV of this claim was saved: make its volume again with this class
    /// (`provision` is idempotent) and delete it.
    Remake(C),
}

/// The choice for a claim deleted mid-provisioning: its PV saved (`live`,
/// read from the API since the cache may lag) is released; a failed read
/// is retried; without its `class` the volume cannot be found (reported);
/// otherwise it is made again and deleted.
pub(crate) fn deleted_claim<C>(
    key: &str,
    claim: &PersistentVolumeClaim,
    pv_name: &str,
    class_name: &str,
    live: Result<Option<PersistentVolume>, kube::Error>,
    class: Option<C>,
) -> Deleted<C> {
    match live {
        Ok(Some(pv)) if pv_is_for(&pv, claim) => return Deleted::Act(Act::Release(None)),
        Ok(_) => {}
        Err(e) => {
            return Deleted::Act(Act::Finish(
                None,
                Step::Retry(format!("reading PersistentVolume {pv_name}: {e}")),
            ))
        }
    }
    match class {
        Some(class) => Deleted::Remake(class),
        None => {
            let msg = format!(
                "claim {key} was deleted while its volume was being provisioned, and StorageClass {class_name:?} is gone, so the volume {pv_name} cannot be found to delete it; re-create the class, or delete the backend volume by hand and remove finalizer {} from the claim",
                a::PROVISIONING_FINALIZER
            );
            let event = Event::new(
                Reason::ProvisioningCleanupFailed,
                EventAction::Cleanup,
                msg.clone(),
            );
            Deleted::Act(Act::Finish(Some(event), Step::Retry(msg)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{claim, pv};

    fn ev(reason: Reason, action: EventAction, note: &str) -> Event {
        Event::new(reason, action, note.to_string())
    }

    #[test]
    fn provision_errors_map_to_acts() {
        use ProvisionError as E;
        let pf = Reason::ProvisioningFailed;
        let failed = "failed to provision volume with StorageClass \"fast\": boom";
        let infeasible = "failed to provision volume with StorageClass \"fast\": infeasible: full";
        let no_node = "failed to provision volume with StorageClass \"fast\": reschedule: r";
        let plain = |msg: &str, step| Act::Finish(Some(ev(pf, EventAction::Default, msg)), step);
        let table: Vec<(E, Option<&str>, Act, bool)> =
            vec![
            (E::InProgress("x".into()), None, Act::Finish(None, Step::Poll), false),
            (E::InProgress("x".into()), Some("n"), Act::Finish(None, Step::Poll), false),
            (E::Ignored("x".into()), Some("n"), Act::Release(None), false),
            (
                E::Reschedule("r".into()),
                Some("n1"),
                Act::Reschedule(ev(
                    pf,
                    EventAction::Reschedule,
                    "cannot provision on node \"n1\": r; asking the scheduler to pick another node",
                )),
                false,
            ),
            // without a selected node a reschedule is a plain failure
            (
                E::Reschedule("r".into()),
                None,
                plain(no_node, Step::Retry(no_node.into())),
                true,
            ),
            (
                E::Failed("boom".into()),
                Some("n"),
                plain(failed, Step::Retry(failed.into())),
                true,
            ),
            (
                E::Infeasible("full".into()),
                None,
                plain(infeasible, Step::Slow(infeasible.into())),
                true,
            ),
        ];
        for (e, node, act, counted) in table {
            assert_eq!(
                provision_failed(&e, node, "fast"),
                (act, counted),
                "{e:?} {node:?}"
            );
        }
    }

    #[test]
    fn save_errors_map_to_unsaved() {
        assert_eq!(
            unsaved("pv", &SaveError::Invalid("spec: bad".into())),
            Unsaved::Refused(
                "the API server refused PersistentVolume pv as invalid: spec: bad".into()
            )
        );
        assert_eq!(
            unsaved("pv", &SaveError::Failed("create pv: 500".into())),
            Unsaved::Failed("create pv: 500".into())
        );
    }

    #[test]
    fn cleanup_after_an_unsaved_pv_maps_to_acts() {
        use DeleteError as D;
        let save = EventAction::SavePersistentVolume;
        let f = a::PROVISIONING_FINALIZER;
        let refused = Unsaved::Refused("why".into());
        let failed = Unsaved::Failed("500".into());
        let gave_up = "why; deleted the backend volume pv; not retried until the claim changes: fix the provisioner or the StorageClass, then edit the claim or restart the provisioner";
        let refused_stuck = format!("why; deleting its backend volume pv failed too (disk); the claim keeps finalizer {f} and cleanup is retried; if you remove it by hand, delete the backend volume of pv manually");
        let retried = "failed to save PersistentVolume pv (500); deleted the backend volume and will retry provisioning";
        let stuck = |e: &str| {
            format!("failed to save PersistentVolume pv (500) and to delete its backend volume ({e}); the claim keeps finalizer {f} and cleanup is retried; if you remove it by hand, delete the backend volume of pv manually")
        };
        let give_up = Act::GiveUp(ev(Reason::ProvisioningFailed, save, gave_up));
        let cleanup_failed = |msg: String| {
            Act::Finish(
                Some(ev(Reason::ProvisioningCleanupFailed, save, &msg)),
                Step::Retry(msg),
            )
        };
        let table: Vec<(&Unsaved, Result<(), D>, Act)> = vec![
            (&refused, Ok(()), give_up.clone()),
            (&refused, Err(D::Ignored("x".into())), give_up),
            (
                &refused,
                Err(D::InProgress("x".into())),
                Act::Finish(None, Step::Poll),
            ),
            (
                &refused,
                Err(D::Failed("disk".into())),
                cleanup_failed(refused_stuck),
            ),
            (
                &failed,
                Ok(()),
                Act::Finish(
                    Some(ev(Reason::ProvisioningFailed, save, retried)),
                    Step::Retry(retried.into()),
                ),
            ),
            (
                &failed,
                Err(D::Failed("disk".into())),
                cleanup_failed(stuck("disk")),
            ),
            // after a failed save, even an ignored or pending delete is
            // reported as a cleanup failure (the finalizer stays)
            (
                &failed,
                Err(D::Ignored("x".into())),
                cleanup_failed(stuck("ignored: x")),
            ),
            (
                &failed,
                Err(D::InProgress("x".into())),
                cleanup_failed(stuck("deletion in progress: x")),
            ),
        ];
        for (why, deleted, act) in table {
            assert_eq!(
                after_unsaved("pv", why, deleted.as_ref().map(|_| ())),
                act,
                "{why:?} {deleted:?}"
            );
        }
    }

    #[test]
    fn cleanup_of_a_deleted_claim_maps_to_acts() {
        use DeleteError as D;
        let msg = "claim ns/c was deleted while being provisioned; deleting its backend volume pv failed: disk; retrying";
        let table: Vec<(Result<(), D>, Act)> = vec![
            (Ok(()), Act::Release(None)),
            (Err(D::Ignored("x".into())), Act::Release(None)),
            (
                Err(D::InProgress("x".into())),
                Act::Finish(None, Step::Poll),
            ),
            (
                Err(D::Failed("disk".into())),
                Act::Finish(
                    Some(ev(
                        Reason::ProvisioningCleanupFailed,
                        EventAction::Cleanup,
                        msg,
                    )),
                    Step::Retry(msg.into()),
                ),
            ),
        ];
        for (deleted, act) in table {
            assert_eq!(
                after_cleanup_delete("ns/c", "pv", deleted.as_ref().map(|_| ())),
                act
            );
        }
        use ProvisionError as E;
        assert_eq!(
            after_cleanup_provision_failed(&E::InProgress("x".into())),
            Act::Finish(None, Step::Poll)
        );
        for e in [
            E::Failed("x".into()),
            E::Ignored("x".into()),
            E::Reschedule("x".into()),
            E::Infeasible("x".into()),
        ] {
            assert_eq!(after_cleanup_provision_failed(&e), Act::Release(None));
        }
    }

    #[test]
    fn a_deleted_claim_is_released_retried_reported_or_remade() {
        let claim = claim("ns", "c").build();
        let ours = pv("pv").claim_ref("ns", "c").build();
        let d = |live, class: Option<&str>| {
            deleted_claim(
                "ns/c",
                &claim,
                "pv",
                "fast",
                live,
                class.map(str::to_string),
            )
        };
        assert_eq!(
            d(Ok(Some(ours.clone())), None),
            Deleted::Act(Act::Release(None)),
            "saved: released, class or not"
        );
        let err = kube::Error::Api(
            kube::core::Status::failure("down", "")
                .with_code(503)
                .boxed(),
        );
        assert!(matches!(
            d(Err(err), Some("fast")),
            Deleted::Act(Act::Finish(None, Step::Retry(m))) if m.starts_with("reading PersistentVolume pv: ")
        ));
        assert_eq!(
            d(
                Ok(Some(pv("pv").claim_ref("ns", "other").build())),
                Some("fast")
            ),
            Deleted::Remake("fast".to_string()),
            "another claim's PV"
        );
        assert_eq!(
            d(Ok(None), Some("fast")),
            Deleted::Remake("fast".to_string())
        );
        let gone = format!("claim ns/c was deleted while its volume was being provisioned, and StorageClass \"fast\" is gone, so the volume pv cannot be found to delete it; re-create the class, or delete the backend volume by hand and remove finalizer {} from the claim", a::PROVISIONING_FINALIZER);
        assert_eq!(
            d(Ok(None), None),
            Deleted::Act(Act::Finish(
                Some(ev(
                    Reason::ProvisioningCleanupFailed,
                    EventAction::Cleanup,
                    &gone
                )),
                Step::Retry(gone.clone())
            ))
        );
    }

    #[test]
    fn refusing_decisions_map_to_acts() {
        let c = claim("ns", "c").class("fast").build();
        let r = |d: ClaimDecision| refusal(&d, "example.com/p", "ns/c", &c);
        let no_node = format!("example.com/p runs one instance per node and cannot choose a node for claim ns/c: its StorageClass \"fast\" uses Immediate binding without naming a node; use volumeBindingMode: WaitForFirstConsumer, or allowedTopologies with one {} value", a::HOSTNAME_LABEL);
        let missing = "StorageClass \"gone\" of claim ns/c not found; create the class or fix the claim's storageClassName";
        let pf = Reason::ProvisioningFailed;
        assert_eq!(
            r(ClaimDecision::NoNode),
            Some(Act::Finish(
                Some(ev(pf, EventAction::NodeSelection, &no_node)),
                Step::Slow(no_node.clone())
            ))
        );
        assert_eq!(
            r(ClaimDecision::ClassMissing("gone".into())),
            Some(Act::Finish(
                Some(ev(pf, EventAction::ClassLookup, missing)),
                Step::Retry(missing.into())
            ))
        );
        assert_eq!(
            r(ClaimDecision::RejectBlock),
            Some(Act::Release(Some(ev(
                pf,
                EventAction::VolumeModeCheck,
                "example.com/p does not support block volumes; use volumeMode: Filesystem or a class of a provisioner that supports Block"
            ))))
        );
        assert!(matches!(
            r(ClaimDecision::RejectDataSource),
            Some(Act::Release(Some(Event {
                action: EventAction::DataSourceCheck,
                ..
            })))
        ));
        for d in [
            ClaimDecision::WaitForNode,
            ClaimDecision::RecordIntent,
            ClaimDecision::Provision,
            ClaimDecision::ReleaseIntent,
            ClaimDecision::CleanupDeleted,
            ClaimDecision::Expand(1),
            ClaimDecision::NodeGone("n".into()),
        ] {
            assert_eq!(r(d.clone()), None, "{d:?}");
        }
    }
}
