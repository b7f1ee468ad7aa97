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

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

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

    /// Our write, guarded by version `guard_rv`, made version `after` of
    /// the claim a reconcile started from: both that claim's version and
    /// `guard_rv` are superseded.
    pub(crate) fn wrote_over(&self, claim: &PersistentVolumeClaim, guard_rv: &str, after: &str) {
        let seen = claim
            .metadata
            .resource_version
            .as_deref()
            .unwrap_or_default();
        self.wrote(&super::step::key_of(claim), &[seen, guard_rv], after);
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
