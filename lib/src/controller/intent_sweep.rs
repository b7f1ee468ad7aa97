//! The intent sweep: backend volumes whose PV was never saved, for a
//! provisioner whose backend records provisioning intent itself
//! ([`IntentRecords`](crate::IntentRecords)).
//!
//! # Why
//!
//! Such a provisioner writes a *pending* record (PV name, claim namespace,
//! name and UID) on its own disk before it makes a volume, and the claim
//! loop marks it *saved* right after the PV is created. So the claim needs
//! no intent finalizer (two PATCHes per volume, half of the API requests of
//! a new volume), and a crash between the backend volume and its PV still
//! leaks nothing: the record says what was being made, and for whom.
//!
//! # The rules ([`decide`])
//!
//! A pending record is looked at only once it is older than the grace
//! period (`--pending-volume-grace`, longer than any provisioning takes;
//! every `provision` call rewrites the record, so a claim still being
//! retried keeps it young). Then, with live reads from the API server, not
//! the caches:
//! - a PV of that name exists for the record's claim UID: the crash came
//!   after the PV was saved; the record is marked saved, nothing removed;
//! - a PV of that name exists for another claim: left alone (logged);
//! - no such PV, and the claim is gone, was re-created (another UID) or is
//!   bound to another volume: the volume is removed through
//!   [`IntentRecords::discard`](crate::IntentRecords::discard), which re-checks the record on disk;
//! - no such PV and the claim still waits: left alone; the claim loop finds
//!   the volume again (`provision` is idempotent).
//!
//! A failed read skips that record for the round: a sweep never removes
//! on a guess. A volume this process is provisioning or saving right now
//! is skipped too, and the sweep holds the volume's `InFlight` place from
//! its reads to its action, so a provision of it cannot start in between:
//! its PV save may be retried for longer than the grace period, and a PV
//! that lands after its volume was removed would point at nothing.
//!
//! A process that dies cannot hold its place; the grace period covers it:
//! it must be longer than a provision plus the PV save's retries, so that
//! the last request a dead provisioner sent has landed (the flag is
//! refused otherwise). A saved record is never returned by
//! [`IntentRecords::pending`](crate::IntentRecords::pending), so a volume whose PV exists is never
//! touched.
//!
//! # Who sweeps
//!
//! The sweep runs with the workers: the leader's, or each node-local
//! instance's (which sees only its own node's disks).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::Api;
use kube::Client;

use tracing::Instrument;

use crate::metrics::Metrics;
use crate::provisioner::{PendingVolume, Provisioner};

/// What to do with one pending volume whose grace period is over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PendingDecision {
    /// Its PV exists for its claim: mark the record saved.
    MarkSaved,
    /// Leave it, for the reason given.
    Keep(&'static str),
    /// Remove the volume, for the reason given.
    Discard(&'static str),
}

/// Whether `volume`'s record is old enough to be looked at.
pub fn due(volume: &PendingVolume, now: SystemTime, grace: Duration) -> bool {
    now.duration_since(volume.recorded_at)
        .is_ok_and(|age| age >= grace)
}

/// Decides on a pending volume from the live PV of its name and (read only
/// when there is no such PV) the live claim of its namespace and name.
pub fn decide(
    volume: &PendingVolume,
    pv: Option<&PersistentVolume>,
    claim: Option<&PersistentVolumeClaim>,
) -> PendingDecision {
    use PendingDecision as D;
    if volume.claim_uid.is_empty() {
        return D::Keep("the record names no claim UID");
    }
    if let Some(pv) = pv {
        let for_uid = pv
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .and_then(|r| r.uid.as_deref());
        return if for_uid == Some(volume.claim_uid.as_str()) {
            D::MarkSaved
        } else {
            D::Keep("a PV of this name exists for another claim")
        };
    }
    let Some(claim) = claim else {
        return D::Discard("its claim is gone and no PV was saved");
    };
    if claim.metadata.uid.as_deref() != Some(volume.claim_uid.as_str()) {
        return D::Discard("its claim was deleted and re-created, and no PV was saved");
    }
    let bound_to = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .filter(|v| !v.is_empty());
    match bound_to {
        Some(other) if other != volume.pv_name => {
            D::Discard("its claim is bound to another volume, and no PV was saved for this one")
        }
        _ => D::Keep("its claim still waits for it"),
    }
}

/// The PVs whose volume this process is working on right now: provisioning
/// and saving (the claim loop) or deciding on and removing (the sweep).
/// One place per PV name, so the two never act on a volume at once.
#[derive(Clone, Debug, Default)]
pub(crate) struct InFlight(Arc<Mutex<HashSet<String>>>);

/// A held place in [`InFlight`]; given back when dropped.
#[derive(Debug)]
pub(crate) struct InFlightGuard {
    set: InFlight,
    pv_name: String,
}

impl InFlight {
    /// Takes `pv_name`'s place, or `None` while someone else holds it.
    pub(crate) fn try_enter(&self, pv_name: &str) -> Option<InFlightGuard> {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        held.insert(pv_name.to_string()).then(|| InFlightGuard {
            set: self.clone(),
            pv_name: pv_name.to_string(),
        })
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut held = self.set.0.lock().unwrap_or_else(|e| e.into_inner());
        held.remove(&self.pv_name);
    }
}

/// How long the PV save's retries may wait in all (`attempts` tries, the
/// first delay `start` doubling up to `max`): the intent sweep's grace
/// period must be longer.
pub fn save_retry_budget(attempts: u32, start: Duration, max: Duration) -> Duration {
    let mut delay = start;
    let mut total = Duration::ZERO;
    for _ in 1..attempts {
        total = total.saturating_add(delay);
        delay = delay.saturating_mul(2).min(max);
    }
    total
}

/// How often the sweep lists the pending records: a quarter of the grace
/// period, between 1 s and 1 min.
pub fn interval(grace: Duration) -> Duration {
    (grace / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Sweeps until dropped; never returns for a provisioner without records.
pub(crate) async fn run<P: Provisioner>(
    client: Client,
    provisioner: Arc<P>,
    grace: Duration,
    metrics: Arc<Metrics>,
    in_flight: InFlight,
) {
    if provisioner.intent_records().is_none() {
        return futures::future::pending().await;
    }
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    loop {
        tokio::time::sleep(interval(grace)).await;
        let Some(records) = provisioner.intent_records() else {
            continue;
        };
        let pending = match records.pending().await {
            Ok(p) => p,
            Err(error) => {
                tracing::warn!(%error, "intent sweep: cannot list the pending volumes");
                continue;
            }
        };
        metrics.pending_volumes.set(pending.len() as i64);
        let now = SystemTime::now();
        for volume in pending.iter().filter(|v| due(v, now, grace)) {
            // Held from the reads to the action (module docs).
            let Some(_place) = in_flight.try_enter(&volume.pv_name) else {
                tracing::debug!(
                    pv = volume.pv_name,
                    "intent sweep: being provisioned right now; skipped"
                );
                continue;
            };
            let pv = match pvs.get_opt(&volume.pv_name).await {
                Ok(pv) => pv,
                Err(error) => {
                    tracing::warn!(pv = volume.pv_name, %error, "intent sweep: reading the PV failed; skipped this round");
                    continue;
                }
            };
            let claim = if pv.is_some() {
                None
            } else {
                let claims: Api<PersistentVolumeClaim> =
                    Api::namespaced(client.clone(), &volume.claim_namespace);
                match claims.get_opt(&volume.claim_name).await {
                    Ok(c) => c,
                    Err(error) => {
                        tracing::warn!(pv = volume.pv_name, %error, "intent sweep: reading the claim failed; skipped this round");
                        continue;
                    }
                }
            };
            let decision = decide(volume, pv.as_ref(), claim.as_ref());
            let span = tracing::info_span!(
                "intent_sweep",
                pv = volume.pv_name,
                claim = format!("{}/{}", volume.claim_namespace, volume.claim_name),
                uid = volume.claim_uid,
            );
            // Instrumented, not entered: the actions await.
            async {
                match decision {
                    PendingDecision::MarkSaved => {
                        if let Err(error) = records.mark_saved(&volume.pv_name).await {
                            tracing::warn!(%error, "intent sweep: marking the record saved failed");
                        }
                    }
                    PendingDecision::Keep(why) => tracing::debug!(why, "intent sweep: kept"),
                    PendingDecision::Discard(why) => match records.discard(volume).await {
                        Ok(()) => {
                            metrics.pending_volumes_discarded_total.inc();
                            tracing::info!(
                                why,
                                "intent sweep: removed a volume whose PV was never saved"
                            );
                        }
                        Err(error) => {
                            tracing::warn!(why, %error, "intent sweep: removing the volume failed; retried next round")
                        }
                    },
                }
            }
            .instrument(span)
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{claim, pv};

    fn pending(age: Duration) -> PendingVolume {
        PendingVolume {
            pv_name: "pvc-1".into(),
            claim_namespace: "ns".into(),
            claim_name: "c".into(),
            claim_uid: "uid-c".into(),
            recorded_at: SystemTime::now() - age,
        }
    }

    #[test]
    fn only_records_older_than_the_grace_period_are_looked_at() {
        let grace = Duration::from_secs(600);
        let now = SystemTime::now();
        assert!(!due(&pending(Duration::from_secs(10)), now, grace));
        assert!(due(&pending(Duration::from_secs(601)), now, grace));
        // A record from the future (clock stepped back) waits.
        let mut future = pending(Duration::ZERO);
        future.recorded_at = now + Duration::from_secs(60);
        assert!(!due(&future, now, grace));
        assert_eq!(interval(grace), Duration::from_secs(60));
        assert_eq!(interval(Duration::from_millis(100)), Duration::from_secs(1));
    }

    #[test]
    fn one_place_per_volume_until_it_is_given_back() {
        let set = InFlight::default();
        let held = set.try_enter("pvc-1").expect("free");
        assert!(set.try_enter("pvc-1").is_none(), "held by the first");
        let other = set.try_enter("pvc-2");
        assert!(other.is_some(), "another volume is free");
        drop(held);
        assert!(set.try_enter("pvc-1").is_some(), "given back on drop");
    }

    #[test]
    fn the_save_budget_sums_the_delays_between_attempts() {
        let s = Duration::from_secs;
        assert_eq!(save_retry_budget(1, s(1), s(2)), Duration::ZERO);
        // 1 + 2 + 2 + 2: the delay doubles up to the longest.
        assert_eq!(save_retry_budget(5, s(1), s(2)), s(7));
        // The defaults: 1 + 2 + 4 + 8.
        assert_eq!(save_retry_budget(5, s(1), s(1000)), s(15));
    }

    #[test]
    fn a_saved_pv_is_never_discarded() {
        let v = pending(Duration::from_secs(900));
        let saved = pv("pvc-1").claim_ref("ns", "c").build();
        assert_eq!(
            saved
                .spec
                .as_ref()
                .unwrap()
                .claim_ref
                .as_ref()
                .unwrap()
                .uid
                .as_deref(),
            Some("uid-c")
        );
        assert_eq!(decide(&v, Some(&saved), None), PendingDecision::MarkSaved);
        // Whatever the claim says.
        assert_eq!(
            decide(&v, Some(&saved), Some(&claim("ns", "c").build())),
            PendingDecision::MarkSaved
        );
        let other = pv("pvc-1").claim_ref("ns", "other").build();
        assert!(matches!(
            decide(&v, Some(&other), None),
            PendingDecision::Keep(_)
        ));
    }

    #[test]
    fn without_a_pv_only_a_gone_or_replaced_claim_loses_its_volume() {
        let v = pending(Duration::from_secs(900));
        assert!(matches!(
            decide(&v, None, None),
            PendingDecision::Discard(_)
        ));
        let waiting = claim("ns", "c").build();
        assert_eq!(waiting.metadata.uid.as_deref(), Some("uid-c"));
        assert!(matches!(
            decide(&v, None, Some(&waiting)),
            PendingDecision::Keep(_)
        ));
        let mut recreated = waiting.clone();
        recreated.metadata.uid = Some("uid-new".into());
        assert!(matches!(
            decide(&v, None, Some(&recreated)),
            PendingDecision::Discard(_)
        ));
        let bound_elsewhere = claim("ns", "c").volume_name("static-pv").build();
        assert!(matches!(
            decide(&v, None, Some(&bound_elsewhere)),
            PendingDecision::Discard(_)
        ));
        let bound_here = claim("ns", "c").volume_name("pvc-1").build();
        assert!(matches!(
            decide(&v, None, Some(&bound_here)),
            PendingDecision::Keep(_)
        ));
        let mut no_uid = v.clone();
        no_uid.claim_uid.clear();
        assert!(matches!(
            decide(&no_uid, None, None),
            PendingDecision::Keep(_)
        ));
    }
}
