//! Every write of the claim loop, in one place, each recorded for the
//! own-writes cache ([`super::own_writes`]) as it is made.
//!
//! Why: a claim write whose resulting version is not recorded makes the
//! next reconcile act on the stale cached version (a second `provision`, a
//! second patch), and a PV create that is not recorded makes a reconcile
//! provision again before the PV cache shows it. When each call site
//! recorded by hand, a new write that forgot to was a silent regression.
//! Here the claim loop has no other way to write: [`ClaimWriter`] holds the
//! APIs and the records, and each method records what it wrote.

use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::ResourceExt;

use super::finalizers::{add_finalizer, is_status, remove_finalizer, Added};
use super::own_writes::{ClaimVersions, SavedVolumes};
use super::Ctx;
use crate::annotations as a;

/// The claim loop's writer for the claims of one namespace and for PVs.
pub(crate) struct ClaimWriter<'a> {
    claims: Api<PersistentVolumeClaim>,
    pvs: Api<PersistentVolume>,
    versions: &'a ClaimVersions,
    saved: &'a SavedVolumes,
    save_attempts: u32,
    save_retry_interval: Duration,
    retry_interval_max: Duration,
}

/// Why [`ClaimWriter::create_pv`] did not save the PV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SaveError {
    /// 422: the API server's validation refused the PV (the message names
    /// the fields). The same PV is refused every time: not retried.
    Invalid(String),
    /// Anything else, after the retries.
    Failed(String),
}

impl<'a> ClaimWriter<'a> {
    /// The writer of one reconcile of a claim in `namespace`.
    pub(crate) fn new<P>(ctx: &'a Ctx<P>, namespace: &str) -> Self {
        Self {
            claims: Api::namespaced(ctx.client.clone(), namespace),
            pvs: Api::all(ctx.client.clone()),
            versions: &ctx.claim_versions,
            saved: &ctx.saved_pvs,
            save_attempts: ctx.opts.pv_save_retries.max(1),
            save_retry_interval: ctx.opts.pv_save_retry_interval,
            retry_interval_max: ctx.opts.retry_interval_max,
        }
    }

    /// Add the intent finalizer to `claim` (guarded; see
    /// [`add_finalizer`]); the version it replaced is recorded.
    pub(crate) async fn add_intent(
        &self,
        claim: &PersistentVolumeClaim,
    ) -> Result<Added<PersistentVolumeClaim>, kube::Error> {
        let added = add_finalizer(&self.claims, claim, a::PROVISIONING_FINALIZER).await?;
        if let Added::Added(patched, applied_to) = &added {
            let after = patched.resource_version().unwrap_or_default();
            self.versions.wrote_over(claim, applied_to, &after);
        }
        Ok(added)
    }

    /// Remove the intent finalizer from `claim` (see [`remove_finalizer`]);
    /// returns the version the patch made (`None`: no patch was needed),
    /// recorded.
    pub(crate) async fn release_intent(
        &self,
        claim: &PersistentVolumeClaim,
    ) -> Result<Option<String>, kube::Error> {
        let patched = remove_finalizer(&self.claims, claim, a::PROVISIONING_FINALIZER).await?;
        Ok(patched.map(|(applied_to, after)| {
            self.versions.wrote_over(claim, &applied_to, &after);
            after
        }))
    }

    /// Apply a reschedule patch (built by
    /// [`reschedule_patch`](super::claim::reschedule_patch) from `claim`'s
    /// own resourceVersion, its guard); the result is recorded.
    pub(crate) async fn reschedule(
        &self,
        claim: &PersistentVolumeClaim,
        patch: json_patch::Patch,
    ) -> Result<PersistentVolumeClaim, kube::Error> {
        let patched = self
            .claims
            .patch(
                &claim.name_any(),
                &PatchParams::default(),
                &Patch::<()>::Json(patch),
            )
            .await?;
        let seen = claim.resource_version().unwrap_or_default();
        let after = patched.resource_version().unwrap_or_default();
        self.versions.wrote_over(claim, &seen, &after);
        Ok(patched)
    }

    /// Set the claim's `status.capacity`. Not recorded, as before this
    /// writer existed: the status write's predecessor is reconciled (and
    /// finds nothing left to do once the PV cache has the new capacity).
    pub(crate) async fn claim_capacity(
        &self,
        claim: &PersistentVolumeClaim,
        capacity: &serde_json::Value,
    ) -> Result<PersistentVolumeClaim, kube::Error> {
        self.claims
            .patch_status(
                &claim.name_any(),
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": {"capacity": capacity}})),
            )
            .await
    }

    /// Raise PV `pv_name`'s `spec.capacity`; the patched PV stands in for
    /// the PV cache until it has it.
    pub(crate) async fn pv_capacity(
        &self,
        pv_name: &str,
        capacity: &serde_json::Value,
    ) -> Result<(), kube::Error> {
        let patched = self
            .pvs
            .patch(
                pv_name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"capacity": capacity}})),
            )
            .await?;
        self.saved.saved(patched);
        Ok(())
    }

    /// Create `pv`, retrying with backoff; the PV as stored stands in for
    /// the PV cache until it has it. A 409 whose existing PV belongs to the
    /// same claim (UID) is success; one that belongs to another claim is
    /// not. A 422 is returned at once.
    pub(crate) async fn create_pv(
        &self,
        pv: &PersistentVolume,
        claim: &PersistentVolumeClaim,
    ) -> Result<(), SaveError> {
        let saved = self.create_pv_retried(pv, claim).await?;
        self.saved.saved(saved);
        Ok(())
    }

    async fn create_pv_retried(
        &self,
        pv: &PersistentVolume,
        claim: &PersistentVolumeClaim,
    ) -> Result<PersistentVolume, SaveError> {
        let name = pv.name_any();
        let mut delay = self.save_retry_interval;
        let attempts = self.save_attempts;
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self.pvs.create(&PostParams::default(), pv).await {
                Ok(created) => return Ok(created),
                Err(e) if is_status(&e, 409) => match self.pvs.get_opt(&name).await {
                    Ok(Some(existing)) if super::claim::pv_is_for(&existing, claim) => {
                        return Ok(existing)
                    }
                    Ok(Some(_)) => {
                        return Err(SaveError::Failed(format!(
                            "PersistentVolume {name} already exists and is bound to another claim; delete it or override the PV name"
                        )))
                    }
                    Ok(None) => last = format!("create {name}: conflict, then not found"),
                    Err(e) => last = format!("reading existing {name}: {e}"),
                },
                Err(kube::Error::Api(status)) if status.code == 422 => {
                    return Err(SaveError::Invalid(status.message))
                }
                Err(e) => last = format!("create {name}: {e}"),
            }
            tracing::warn!(attempt, error = %last, "saving PV failed");
            if attempt < attempts {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(self.retry_interval_max);
            }
        }
        Err(SaveError::Failed(last))
    }
}
