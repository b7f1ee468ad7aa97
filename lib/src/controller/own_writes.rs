//! What this controller wrote that its caches have not shown yet, so that a
//! reconcile does not act on a cache older than its own writes.
//!
//! The claim loop works from caches that trail the API server. After it
//! adds its intent finalizer (claim version A → B), saves the PV and removes
//! the finalizer (B → C), the watches still deliver B, and the PV may not be
//! in the PV cache yet. A reconcile of B, or even of C before the PV shows
//! up, then sees no PV: it calls `provision` again (the PV create meets 409)
//! and patches the claim again. At 10,000 claims that was a third of all
//! provisioning calls. Client-go controllers track "expectations" for this;
//! here the controller remembers
//!
//! - [`ClaimVersions`]: which claim versions its own writes superseded (A
//!   and B); a reconcile of one of those is skipped, since the newer
//!   version is on its way through the same watch;
//! - [`SavedVolumes`]: the PVs it created, used by decisions until the PV
//!   cache has them.
//!
//! Versions are compared for equality only (resourceVersions are opaque).
//! A skipped version always has a successor, so nothing is lost; anything
//! not recorded is reconciled exactly as before. Records expire: a claim
//! decided on a stand-in PV is reconciled again after that minute, so a PV
//! deleted before the cache ever showed it is noticed then.
//!
//! Every write of the claim loop goes through [`ClaimWriter`], which holds
//! the APIs and these records, and records each write as it makes it: when
//! each call site recorded by hand, a new write that forgot to was a silent
//! regression (a second `provision`, a second patch). The claim loop has no
//! other way to write, and nothing else calls the recorders.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::ResourceExt;

use super::finalizers::{add_finalizer, is_status, remove_finalizer, Added};
use super::Ctx;
use crate::annotations as a;
use crate::expiring::ExpiringMap;

/// How long a record is kept without a reconcile of its claim.
const KEEP: Duration = Duration::from_secs(10 * 60);
/// Superseded versions kept per claim (older ones are forgotten).
const MAX_PER_CLAIM: usize = 8;

#[derive(Debug, Default)]
struct Versions {
    superseded: Vec<String>,
    latest: String,
}

/// Per claim key: the versions our writes replaced, and the one they made last.
#[derive(Debug)]
pub(crate) struct ClaimVersions {
    by_key: Mutex<ExpiringMap<Versions>>,
}

impl Default for ClaimVersions {
    fn default() -> Self {
        Self {
            by_key: Mutex::new(ExpiringMap::new(KEEP)),
        }
    }
}

impl ClaimVersions {
    /// Our write made version `after` of `key`; every version in `older`
    /// (the one the reconcile started from, the one the patch's guard was
    /// built from) was seen before it, so all are superseded. A patch
    /// guarded by a finalizer list may land on a newer version than its
    /// guard's; that version is not recorded and is reconciled as usual.
    pub(crate) fn wrote(&self, key: &str, older: &[&str], after: &str) {
        if after.is_empty() {
            return;
        }
        let mut map = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        let v = map.get_or_insert_with(key, Instant::now(), Versions::default);
        // Our previous write's result is older than `after` too, even if
        // someone else wrote in between.
        let previous = std::mem::take(&mut v.latest);
        for old in older.iter().copied().chain([previous.as_str()]) {
            if !old.is_empty() && old != after && !v.superseded.iter().any(|s| s == old) {
                v.superseded.push(old.to_string());
            }
        }
        let excess = v.superseded.len().saturating_sub(MAX_PER_CLAIM);
        v.superseded.drain(..excess);
        v.latest = after.to_string();
    }

    /// Whether version `rv` of `key` was superseded by our own write (skip
    /// its reconcile). Any other version ends the record: the cache has
    /// caught up, or moved past it.
    pub(crate) fn is_superseded(&self, key: &str, rv: &str) -> bool {
        let mut map = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        let stale = map
            .get(key, Instant::now())
            .is_some_and(|v| v.superseded.iter().any(|s| s == rv));
        if !stale {
            map.remove(key);
        }
        stale
    }
}

/// How long a saved PV stands in for the PV cache.
pub(crate) const SAVED_PV_KEEP: Duration = Duration::from_secs(60);

/// PVs this controller created, by name, until the PV cache has them.
#[derive(Debug)]
pub(crate) struct SavedVolumes {
    by_name: Mutex<ExpiringMap<Arc<PersistentVolume>>>,
}

impl Default for SavedVolumes {
    fn default() -> Self {
        Self {
            by_name: Mutex::new(ExpiringMap::new(SAVED_PV_KEEP)),
        }
    }
}

impl SavedVolumes {
    /// We created (or found our own) `pv`.
    pub(crate) fn saved(&self, pv: PersistentVolume) {
        let name = pv.metadata.name.clone().unwrap_or_default();
        let mut map = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(&name, Instant::now(), Arc::new(pv));
    }

    /// The PV named `name`: the cache's `cached` if it has one (our record
    /// is then dropped), else the one we saved, if any.
    pub(crate) fn or_saved(
        &self,
        name: &str,
        cached: Option<Arc<PersistentVolume>>,
    ) -> Option<Arc<PersistentVolume>> {
        let mut map = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        match cached {
            Some(pv) => {
                map.remove(name);
                Some(pv)
            }
            None => map.get(name, Instant::now()).cloned(),
        }
    }
}

/// The claim loop's writer for the claims of one namespace and for PVs.
pub(crate) struct ClaimWriter<'a> {
    /// The claim's `namespace/name`, the key of its version records.
    key: String,
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
    /// Our write, guarded by version `guard_rv`, made version `after` of
    /// `claim` (the version the reconcile started from): both that version
    /// and `guard_rv` are superseded.
    fn wrote_over(&self, claim: &PersistentVolumeClaim, guard_rv: &str, after: &str) {
        let seen = claim.resource_version().unwrap_or_default();
        self.versions
            .wrote(&self.key, &[seen.as_str(), guard_rv], after);
    }

    /// The writer of one reconcile of the claim with `key`
    /// (`namespace/name`) in `namespace`.
    pub(crate) fn new<P>(ctx: &'a Ctx<P>, key: &str, namespace: &str) -> Self {
        Self {
            key: key.to_string(),
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
            self.wrote_over(claim, applied_to, &after);
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
            self.wrote_over(claim, &applied_to, &after);
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
        self.wrote_over(claim, &seen, &after);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(name: &str, marker: &str) -> PersistentVolume {
        let mut pv = PersistentVolume::default();
        pv.metadata.name = Some(name.into());
        pv.metadata.resource_version = Some(marker.into());
        pv
    }

    #[test]
    fn a_saved_pv_stands_in_until_the_cache_has_it() {
        let saved = SavedVolumes::default();
        assert!(saved.or_saved("pv-1", None).is_none());
        saved.saved(pv("pv-1", "ours"));
        let got = saved.or_saved("pv-1", None).expect("ours");
        assert_eq!(got.metadata.resource_version.as_deref(), Some("ours"));
        // the cache's copy wins, and ends our record
        let cached = Arc::new(pv("pv-1", "cache"));
        let got = saved.or_saved("pv-1", Some(cached)).unwrap();
        assert_eq!(got.metadata.resource_version.as_deref(), Some("cache"));
        assert!(saved.or_saved("pv-1", None).is_none());
    }

    #[test]
    fn versions_our_writes_replaced_are_skipped_until_a_newer_one_is_seen() {
        let s = ClaimVersions::default();
        s.wrote("ns/c", &["1"], "2"); // intent finalizer added
        s.wrote("ns/c", &["2"], "3"); // and removed
        assert!(s.is_superseded("ns/c", "1"));
        assert!(s.is_superseded("ns/c", "2"));
        assert!(!s.is_superseded("ns/c", "3"), "the latest is current");
        // the record ended with it
        assert!(!s.is_superseded("ns/c", "2"));
    }

    #[test]
    fn an_unknown_version_or_claim_is_reconciled_and_ends_the_record() {
        let s = ClaimVersions::default();
        assert!(!s.is_superseded("ns/other", "1"));
        s.wrote("ns/c", &["1"], "2");
        assert!(!s.is_superseded("ns/c", "7"), "someone else's version");
        assert!(!s.is_superseded("ns/c", "1"), "record ended");
    }

    #[test]
    fn a_patch_applied_to_a_re_read_version_supersedes_both() {
        let s = ClaimVersions::default();
        // the reconcile saw 1, the guard failed, the re-read gave 4 (the
        // binder's), the patch made 5
        s.wrote("ns/c", &["1", "4"], "5");
        assert!(s.is_superseded("ns/c", "4"));
        assert!(s.is_superseded("ns/c", "1"));
        assert!(!s.is_superseded("ns/c", "5"));
    }

    #[test]
    fn a_write_over_someone_elses_version_supersedes_ours_and_theirs() {
        let s = ClaimVersions::default();
        s.wrote("ns/c", &["1"], "2");
        s.wrote("ns/c", &["5"], "6"); // the binder wrote 3..5 in between
        for rv in ["1", "2", "5"] {
            assert!(s.is_superseded("ns/c", rv), "{rv}");
        }
        assert!(!s.is_superseded("ns/c", "6"));
    }

    #[test]
    fn no_op_and_empty_writes_record_nothing_and_the_list_is_bounded() {
        let s = ClaimVersions::default();
        s.wrote("ns/c", &[""], "2");
        s.wrote("ns/c", &["2"], "2");
        assert!(!s.is_superseded("ns/c", "2"));
        for i in 0..20 {
            s.wrote("ns/c", &[&i.to_string()], &(i + 1).to_string());
        }
        assert!(!s.is_superseded("ns/d", "0"));
        assert!(s.is_superseded("ns/c", "19"));
        let s2 = ClaimVersions::default();
        for i in 0..20 {
            s2.wrote("ns/c", &[&i.to_string()], &(i + 1).to_string());
        }
        assert!(
            !s2.is_superseded("ns/c", "0"),
            "forgotten: only the last 8 are kept"
        );
    }
}
