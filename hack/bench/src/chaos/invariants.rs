//! The invariants a user relies on, checked on the settled cluster.
//!
//! 1. **leaked**: a backend volume exists without a PV (a `Retain` volume
//!    whose claim is gone keeps its `Released` PV, so it is not counted);
//! 2. **double**: a claim bound to more than one volume over the run, a claim
//!    with more than one PV, or a PV created twice for one claim;
//! 3. **data deleted**: a backend volume deleted while its PV was `Retain` or
//!    its claim still live (caught by the backend's auditor as it happened),
//!    or a `Retain`/bound PV whose backend volume is missing at the end;
//! 4. **silent pending**: a claim not `Bound` with no Warning event about it.
//!
//! Plus **unsettled** (liveness): claims stuck `Terminating`, `Delete` PVs
//! left `Released`, after the settle timeout.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Event, PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, ListParams};
use kube::Client;
use kube_testserver::registry::id;
use kube_testserver::Store;
use serde_json::Value;

use super::observer::Seen;
use crate::backend::Snapshot;

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn all(store: &Store, plural: &str) -> Vec<Value> {
    store
        .list(id("", plural), None, &|_| true)
        .items
        .into_iter()
        .map(|v| (*v).clone())
        .collect()
}

/// Every object of kind `K` in the cluster, as JSON, through the API.
async fn list_json<K: e2e_support::Object>(client: &Client) -> Result<Vec<Value>, kube::Error> {
    let api: Api<K> = Api::all(client.clone());
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .map(|o| serde_json::to_value(o).expect("a listed object serializes"))
        .collect())
}

/// The cluster state the checks read: claims, the provisioner's PVs and
/// events, as plain JSON, however they were obtained (the test server's
/// store, or lists through the API of a real cluster).
pub struct World {
    claims: Vec<Value>,
    pvs: Vec<Value>,
    events: Vec<Value>,
}

impl World {
    /// The world of these lists; only PVs provisioned by `provisioner`
    /// (`pv.kubernetes.io/provisioned-by`) are kept.
    pub fn from_lists(
        claims: Vec<Value>,
        pvs: Vec<Value>,
        events: Vec<Value>,
        provisioner: &str,
    ) -> Self {
        let pvs = pvs
            .into_iter()
            .filter(|pv| {
                s(pv, "/metadata/annotations/pv.kubernetes.io~1provisioned-by") == provisioner
            })
            .collect();
        Self {
            claims,
            pvs,
            events,
        }
    }

    /// Reads claims, PVs and events of the provisioner `provisioner`
    /// straight from the test server's store (no HTTP, no faults).
    pub fn read(store: &Store, provisioner: &str) -> Self {
        Self::from_lists(
            all(store, "persistentvolumeclaims"),
            all(store, "persistentvolumes"),
            all(store, "events"),
            provisioner,
        )
    }

    /// Lists claims and PVs (and, with `events`, every event: the final
    /// check needs them, [`World::settled`] does not) through the API.
    pub async fn list(
        client: &Client,
        provisioner: &str,
        events: bool,
    ) -> Result<Self, kube::Error> {
        let claims = list_json::<PersistentVolumeClaim>(client).await?;
        let pvs = list_json::<PersistentVolume>(client).await?;
        let events = if events {
            list_json::<Event>(client).await?
        } else {
            Vec::new()
        };
        Ok(Self::from_lists(claims, pvs, events, provisioner))
    }

    fn pv_names(&self) -> BTreeSet<String> {
        self.pvs
            .iter()
            .map(|p| s(p, "/metadata/name").to_string())
            .collect()
    }

    /// Whether the controller has nothing left to do: every claim `Bound`
    /// without the intent finalizer and none terminating, every PV `Bound` or a
    /// `Released` `Retain` one, and the backend holding exactly the PVs.
    pub fn settled(&self, backend: &Snapshot) -> bool {
        let claims_done = self.claims.iter().all(|c| {
            s(c, "/status/phase") == "Bound"
                && c.pointer("/metadata/deletionTimestamp").is_none()
                && !crate::throughput::has_intent(c)
        });
        // A `Bound` PV whose claim is gone is about to be `Released` (the
        // binder has not seen the deletion yet): not settled.
        let live: std::collections::HashSet<&str> =
            self.claims.iter().map(|c| s(c, "/metadata/uid")).collect();
        let pvs_done = self.pvs.iter().all(|p| {
            let phase = s(p, "/status/phase");
            (phase == "Bound" && live.contains(s(p, "/spec/claimRef/uid")))
                || (phase == "Released" && s(p, "/spec/persistentVolumeReclaimPolicy") == "Retain")
        });
        claims_done && pvs_done && backend.volumes == self.pv_names()
    }
}

/// Every violation found, by invariant, and what is worth knowing besides.
#[derive(Debug, Default)]
pub struct Report {
    /// Invariant 1: backend volumes without a PV.
    pub leaked: Vec<String>,
    /// Invariant 2: claims bound to more than one volume over the run.
    pub double: Vec<String>,
    /// Invariant 3: backend volumes deleted while their PV kept them.
    pub data_deleted: Vec<String>,
    /// Invariant 4: claims not Bound with no Warning event about them.
    pub silent_pending: Vec<String>,
    /// Liveness: claims neither Bound nor explained by a Warning when the
    /// run settled.
    pub unsettled: Vec<String>,
    /// Claims not Bound but with a Warning saying why.
    pub explained_pending: Vec<String>,
    /// Backend volumes created more than once (legitimate after a PV could
    /// not be saved and the volume was cleaned up, then retried).
    pub recreated: Vec<(String, u32)>,
}

impl Report {
    /// Number of violations (all must be 0).
    pub fn violations(&self) -> usize {
        self.leaked.len()
            + self.double.len()
            + self.data_deleted.len()
            + self.silent_pending.len()
            + self.unsettled.len()
    }

    /// The printable summary, one line per invariant, details below.
    pub fn render(&self) -> String {
        let mut t = crate::table::Table::new(&["invariant", "violations"]);
        let rows: [(&str, &Vec<String>); 5] = [
            ("backend volumes without a PV (leaked)", &self.leaked),
            (
                "claims bound to >1 volume or provisioned twice",
                &self.double,
            ),
            (
                "data deleted for a Retain or still-bound volume",
                &self.data_deleted,
            ),
            (
                "claims left Pending without a Warning event",
                &self.silent_pending,
            ),
            (
                "unsettled after the timeout (Terminating claims, Released Delete PVs)",
                &self.unsettled,
            ),
        ];
        let mut details = String::new();
        for (name, v) in rows {
            t.row(vec![name.into(), v.len().to_string()]);
            for d in v.iter().take(20) {
                details += &format!("  {name}: {d}\n");
            }
            if v.len() > 20 {
                details += &format!("  {name}: ... and {} more\n", v.len() - 20);
            }
        }
        let mut out = t.render() + &details;
        if !self.explained_pending.is_empty() {
            out += &format!("pending with a reason: {:?}\n", self.explained_pending);
        }
        out
    }
}

/// Checks the invariants on `world`, the backend's `backend` state and the
/// run's record `seen`.
pub fn check(world: &World, backend: &Snapshot, seen: &Seen) -> Report {
    let mut r = Report {
        recreated: backend.recreated.clone(),
        ..Report::default()
    };
    let pv_names = world.pv_names();

    // 1. leaked
    r.leaked = backend.volumes.difference(&pv_names).cloned().collect();

    // 2. double
    let mut pvs_per_claim: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in &world.pvs {
        pvs_per_claim
            .entry(s(p, "/spec/claimRef/uid"))
            .or_default()
            .push(s(p, "/metadata/name"));
    }
    let name_of = |uid: &str| {
        seen.claim_names
            .get(uid)
            .cloned()
            .unwrap_or_else(|| format!("uid {uid}"))
    };
    for (uid, names) in &pvs_per_claim {
        if names.len() > 1 {
            r.double
                .push(format!("claim {} has PVs {names:?}", name_of(uid)));
        }
    }
    for (uid, created) in &seen.pvs_created {
        if created.len() > 1 {
            r.double.push(format!(
                "claim {}: PV created {} times: {created:?}",
                name_of(uid),
                created.len()
            ));
        }
    }
    for (uid, vols) in &seen.bound_to {
        if vols.len() > 1 {
            r.double
                .push(format!("claim {} was bound to {vols:?}", name_of(uid)));
        }
    }

    // 3. data deleted
    r.data_deleted.extend(backend.violations.iter().cloned());
    for p in &world.pvs {
        let name = s(p, "/metadata/name");
        let keep = s(p, "/spec/persistentVolumeReclaimPolicy") == "Retain"
            || s(p, "/status/phase") == "Bound";
        if keep && !backend.volumes.contains(name) {
            r.data_deleted.push(format!(
                "PV {name} ({}, {}) has no backend volume",
                s(p, "/status/phase"),
                s(p, "/spec/persistentVolumeReclaimPolicy")
            ));
        }
    }

    // 4. silent pending, and liveness
    let mut warnings: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for e in &world.events {
        if s(e, "/type") == "Warning" {
            warnings
                .entry(s(e, "/involvedObject/uid"))
                .or_default()
                .push(format!("{}: {}", s(e, "/reason"), s(e, "/message")));
        }
    }
    for c in &world.claims {
        let name = s(c, "/metadata/name");
        if c.pointer("/metadata/deletionTimestamp").is_some() {
            r.unsettled.push(format!(
                "claim {name} stuck Terminating, finalizers {}",
                c.pointer("/metadata/finalizers")
                    .cloned()
                    .unwrap_or_default()
            ));
        } else if s(c, "/status/phase") != "Bound" {
            match warnings.get(s(c, "/metadata/uid")) {
                Some(w) => r
                    .explained_pending
                    .push(format!("{name}: {}", w.join("; "))),
                None => r
                    .silent_pending
                    .push(format!("claim {name} is {:?}", s(c, "/status/phase"))),
            }
        }
    }
    for p in &world.pvs {
        if s(p, "/status/phase") == "Released"
            && s(p, "/spec/persistentVolumeReclaimPolicy") != "Retain"
        {
            r.unsettled
                .push(format!("PV {} left Released", s(p, "/metadata/name")));
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const P: &str = "chaos.example/mem";

    fn world(claims: Vec<Value>, pvs: Vec<Value>, events: Vec<Value>) -> World {
        World::from_lists(claims, pvs, events, P)
    }

    fn pv(name: &str, uid: &str, phase: &str, policy: &str) -> Value {
        json!({"metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": P}}, "spec": {"claimRef": {"uid": uid}, "persistentVolumeReclaimPolicy": policy}, "status": {"phase": phase}})
    }

    fn snapshot(vols: &[&str]) -> Snapshot {
        Snapshot {
            volumes: vols.iter().map(|s| s.to_string()).collect(),
            ..Snapshot::default()
        }
    }

    #[test]
    fn clean_world_has_no_violations_and_is_settled() {
        let w = world(
            vec![json!({"metadata": {"name": "a", "uid": "u1"}, "status": {"phase": "Bound"}})],
            vec![
                pv("pvc-u1", "u1", "Bound", "Delete"),
                pv("pvc-u2", "u2", "Released", "Retain"),
            ],
            vec![],
        );
        let b = snapshot(&["pvc-u1", "pvc-u2"]);
        assert!(w.settled(&b));
        assert_eq!(check(&w, &b, &Seen::default()).violations(), 0);
    }

    #[test]
    fn only_the_control_planes_finalizers_are_settled() {
        let claim = |fin: &[&str]| json!({"metadata": {"name": "a", "uid": "u1", "finalizers": fin}, "status": {"phase": "Bound"}});
        let pvs = || vec![pv("pvc-u1", "u1", "Bound", "Delete")];
        let b = snapshot(&["pvc-u1"]);
        let real = world(
            vec![claim(&["kubernetes.io/pvc-protection"])],
            pvs(),
            vec![],
        );
        assert!(real.settled(&b), "pvc-protection is the control plane's");
        let ours = world(
            vec![claim(&["external-storage.io/provisioning"])],
            pvs(),
            vec![],
        );
        assert!(!ours.settled(&b), "the provisioning finalizer is ours");
    }

    #[test]
    fn pvs_of_other_provisioners_are_not_counted() {
        let mut other = pv("pvc-u9", "u9", "Released", "Delete");
        other["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] = json!("x");
        let w = world(vec![], vec![other], vec![]);
        assert!(w.settled(&snapshot(&[])));
    }

    #[test]
    fn a_bound_pv_whose_claim_is_gone_is_not_settled() {
        // The claim was deleted; the binder has not marked its PV Released yet.
        let w = world(vec![], vec![pv("pvc-u1", "u1", "Bound", "Delete")], vec![]);
        assert!(!w.settled(&snapshot(&["pvc-u1"])));
    }

    #[test]
    fn each_invariant_is_detected() {
        let w = world(
            vec![
                json!({"metadata": {"name": "p", "uid": "u3"}, "status": {"phase": "Pending"}}),
                json!({"metadata": {"name": "q", "uid": "u4"}, "status": {"phase": "Pending"}}),
            ],
            vec![
                pv("pvc-u1", "u1", "Bound", "Delete"),
                pv("pvc-u2", "u2", "Released", "Retain"),
            ],
            vec![
                json!({"type": "Warning", "reason": "ProvisioningFailed", "message": "no", "involvedObject": {"uid": "u4"}}),
            ],
        );
        // pvc-u2 (Retain) lost its data; pvc-x leaked.
        let b = snapshot(&["pvc-u1", "pvc-x"]);
        let mut seen = Seen::default();
        seen.bound_to.insert(
            "u1".into(),
            ["pvc-u1".to_string(), "pvc-other".to_string()].into(),
        );
        let r = check(&w, &b, &seen);
        assert_eq!(r.leaked, vec!["pvc-x".to_string()]);
        assert_eq!(r.data_deleted.len(), 1, "{r:?}");
        assert_eq!(r.double.len(), 1, "{r:?}");
        assert_eq!(r.silent_pending.len(), 1, "{r:?}");
        assert_eq!(r.explained_pending.len(), 1, "{r:?}");
        assert!(!w.settled(&b));
    }
}
