//! A simplified PersistentVolume controller (kube-controller-manager's
//! binder): phases, pre-bound volumes, matching claims to Available volumes,
//! Released volumes, Lost claims and the storage-provisioner annotations;
//! and the pv-protection and pvc-protection controllers, which release the
//! protection finalizers of deleted volumes and claims no longer in use.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{json, Value};

use super::quantity;
use crate::registry::id;
use crate::selectors::LabelSelector;
use crate::store::{meta_str, Store};

/// Annotation set on a claim when binding completed.
pub const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Annotation set when the controller (not the user) did the binding.
pub const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// Node chosen by the scheduler for WaitForFirstConsumer claims.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// Provisioner expected to provision a claim.
pub const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// Legacy form of [`STORAGE_PROVISIONER`].
pub const BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";

pub use crate::wellknown::{claim_class, BETA_STORAGE_CLASS};

/// Runs the binder until the task is aborted.
pub async fn run(store: Arc<Store>) {
    let res = vec![
        id("", "persistentvolumes"),
        id("", "persistentvolumeclaims"),
        id("storage.k8s.io", "storageclasses"),
        id("", "nodes"),
        id("", "pods"),
    ];
    super::run_loop(store, res, |st| {
        pass(st);
        protection(st);
    })
    .await
}

/// `v` at the JSON pointer `p`, which must have no `~` escapes (none of the
/// binder's do). `Value::pointer` unescapes every segment, allocating; a
/// pass reads a few fields of every claim and volume, and at 10,000 of each
/// that unescaping was a fifth of the process's CPU time.
fn at<'a>(v: &'a Value, p: &str) -> Option<&'a Value> {
    p.split('/').skip(1).try_fold(v, |v, key| match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    at(v, p).and_then(Value::as_str).unwrap_or("")
}

fn ann<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    at(v, "/metadata/annotations")
        .and_then(|a| a.get(k))
        .and_then(Value::as_str)
}

fn set_ann(v: &mut Value, k: &str, val: &str) {
    if !v["metadata"]
        .get("annotations")
        .is_some_and(Value::is_object)
    {
        v["metadata"]["annotations"] = json!({});
    }
    v["metadata"]["annotations"][k] = json!(val);
}

fn deleting(v: &Value) -> bool {
    at(v, "/metadata/deletionTimestamp").is_some()
}

fn list(store: &Store, group: &str, plural: &str) -> Vec<Arc<Value>> {
    store.list(id(group, plural), None, &|_| true).items
}

/// Whether `node` satisfies the PV's `spec.nodeAffinity.required`, as the
/// real scheduler and kubelet decide it (`CheckNodeAffinity` in
/// k8s.io/component-helpers): against the node's labels only. The check
/// builds a Node that has nothing but the labels, so a `matchFields
/// metadata.name` term sees an empty name and an `In` never matches.
pub fn node_affinity_ok(pv: &Value, node: &Value) -> bool {
    let Some(terms) =
        at(pv, "/spec/nodeAffinity/required/nodeSelectorTerms").and_then(Value::as_array)
    else {
        return true;
    };
    let labels = at(node, "/metadata/labels");
    let name = "";
    terms.iter().any(|t| {
        let exprs = t
            .get("matchExpressions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let fields = t
            .get("matchFields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if exprs.is_empty() && fields.is_empty() {
            return false;
        }
        let check = |e: &Value, got: Option<&str>| {
            let vals: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => got.is_some_and(|g| vals.contains(&g)),
                "NotIn" => !got.is_some_and(|g| vals.contains(&g)),
                "Exists" => got.is_some(),
                "DoesNotExist" => got.is_none(),
                "Gt" => got
                    .and_then(|g| g.parse::<i64>().ok())
                    .zip(vals.first().and_then(|v| v.parse::<i64>().ok()))
                    .is_some_and(|(g, v)| g > v),
                "Lt" => got
                    .and_then(|g| g.parse::<i64>().ok())
                    .zip(vals.first().and_then(|v| v.parse::<i64>().ok()))
                    .is_some_and(|(g, v)| g < v),
                _ => false,
            }
        };
        exprs.iter().all(|e| {
            check(
                e,
                labels
                    .and_then(|l| l.get(s(e, "/key")))
                    .and_then(Value::as_str),
            )
        }) && fields
            .iter()
            .all(|e| check(e, (s(e, "/key") == "metadata.name").then_some(name)))
    })
}

fn set_pv_phase(store: &Store, pv: &Value, phase: &str) {
    let name = meta_str(pv, "name").unwrap_or("");
    let _ = store.mutate(id("", "persistentvolumes"), "", name, |cur| {
        let mut n = cur.clone();
        if !n.get("status").is_some_and(Value::is_object) {
            n["status"] = json!({});
        }
        n["status"]["phase"] = json!(phase);
        Ok(n)
    });
}

/// Binds `pv` and `claim` both ways. `by_controller_pv` marks that the
/// controller chose the volume (claimRef was not pre-set by the user).
fn bind(store: &Store, pv: &Value, claim: &Value, by_controller_pv: bool) {
    let pv_name = meta_str(pv, "name").unwrap_or("").to_string();
    let ns = meta_str(claim, "namespace").unwrap_or("").to_string();
    let cname = meta_str(claim, "name").unwrap_or("").to_string();
    let cuid = meta_str(claim, "uid").unwrap_or("").to_string();
    let crv = meta_str(claim, "resourceVersion").unwrap_or("").to_string();
    let pv_ok = store.mutate(id("", "persistentvolumes"), "", &pv_name, |cur| {
        let mut n = cur.clone();
        let cr_uid = s(cur, "/spec/claimRef/uid");
        if cr_uid.is_empty() {
            n["spec"]["claimRef"] = json!({"kind": "PersistentVolumeClaim", "namespace": ns, "name": cname,
                "uid": cuid, "apiVersion": "v1", "resourceVersion": crv});
            if by_controller_pv {
                set_ann(&mut n, BOUND_BY_CONTROLLER, "yes");
            }
        } else if cr_uid != cuid {
            return Err(crate::ApiError::new(409, "Conflict", "claimRef changed"));
        }
        if !n.get("status").is_some_and(Value::is_object) {
            n["status"] = json!({});
        }
        n["status"]["phase"] = json!("Bound");
        Ok(n)
    });
    if pv_ok.is_err() {
        return;
    }
    let _ = store.mutate(id("", "persistentvolumeclaims"), &ns, &cname, |cur| {
        let mut n = cur.clone();
        if meta_str(cur, "uid") != Some(cuid.as_str()) {
            return Err(crate::ApiError::new(409, "Conflict", "claim replaced"));
        }
        if !n.get("spec").is_some_and(Value::is_object) {
            n["spec"] = json!({});
        }
        n["spec"]["volumeName"] = json!(pv_name);
        set_ann(&mut n, BIND_COMPLETED, "yes");
        set_ann(&mut n, BOUND_BY_CONTROLLER, "yes");
        if !n.get("status").is_some_and(Value::is_object) {
            n["status"] = json!({});
        }
        n["status"]["phase"] = json!("Bound");
        if let Some(c) = at(pv, "/spec/capacity") {
            n["status"]["capacity"] = c.clone();
        }
        if let Some(m) = at(pv, "/spec/accessModes") {
            n["status"]["accessModes"] = m.clone();
        }
        Ok(n)
    });
}

/// Whether a volume pre-bound to `claim` can be bound to it: the checks
/// `FindMatchingVolume` (component-helpers) makes before it accepts a
/// pre-bound volume (capacity, volume mode, not being deleted), plus the
/// access-mode index its volumes come from (the volume's modes include all
/// of the claim's). Class, phase and selector are not checked for
/// pre-bound volumes, as in the real binder.
pub fn prebound_fits(pv: &Value, claim: &Value) -> bool {
    let want = quantity::parse(s(claim, "/spec/resources/requests/storage")).unwrap_or(0.0);
    let have = quantity::parse(s(pv, "/spec/capacity/storage")).unwrap_or(0.0);
    have >= want && !deleting(pv) && modes_fit(pv, claim)
}

fn modes_fit(pv: &Value, claim: &Value) -> bool {
    let modes = |v: &Value| -> Vec<String> {
        at(v, "/spec/accessModes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let pv_modes = modes(pv);
    let vm = |v: &Value| match s(v, "/spec/volumeMode") {
        "" => "Filesystem".to_string(),
        m => m.to_string(),
    };
    modes(claim).iter().all(|m| pv_modes.contains(m)) && vm(pv) == vm(claim)
}

fn pv_fits(pv: &Value, claim: &Value, node: Option<&Value>) -> bool {
    if s(pv, "/status/phase") != "Available"
        || at(pv, "/spec/claimRef").is_some_and(|c| !c.is_null())
        || deleting(pv)
    {
        return false;
    }
    if s(pv, "/spec/storageClassName") != claim_class(claim) {
        return false;
    }
    let want = quantity::parse(s(claim, "/spec/resources/requests/storage")).unwrap_or(0.0);
    let have = quantity::parse(s(pv, "/spec/capacity/storage")).unwrap_or(0.0);
    if have < want {
        return false;
    }
    if !modes_fit(pv, claim) {
        return false;
    }
    if let Some(sel) = at(claim, "/spec/selector").filter(|v| !v.is_null()) {
        if !LabelSelector::from_json(sel).matches(pv) {
            return false;
        }
    }
    if let Some(node) = node {
        if !node_affinity_ok(pv, node) {
            return false;
        }
    }
    true
}

/// One reconciliation pass over all volumes and claims.
pub fn pass(store: &Store) {
    let pvc_r = id("", "persistentvolumeclaims");
    let claims: HashMap<(String, String), Arc<Value>> = list(store, "", "persistentvolumeclaims")
        .into_iter()
        .map(|c| {
            (
                (
                    meta_str(&c, "namespace").unwrap_or("").to_string(),
                    meta_str(&c, "name").unwrap_or("").to_string(),
                ),
                c,
            )
        })
        .collect();
    let classes: HashMap<String, Arc<Value>> = list(store, "storage.k8s.io", "storageclasses")
        .into_iter()
        .map(|c| (meta_str(&c, "name").unwrap_or("").to_string(), c))
        .collect();
    let nodes: HashMap<String, Arc<Value>> = list(store, "", "nodes")
        .into_iter()
        .map(|n| (meta_str(&n, "name").unwrap_or("").to_string(), n))
        .collect();

    // Volumes: phases and pre-bound volumes.
    for pv in list(store, "", "persistentvolumes") {
        let phase = s(&pv, "/status/phase");
        if deleting(&pv) {
            // Held by a finalizer (pv-protection): like the real PV
            // controller, a deleted PV whose claim is gone is still
            // Released (which lets pv-protection release it).
            let cr_uid = s(&pv, "/spec/claimRef/uid");
            let (ns, name) = (
                s(&pv, "/spec/claimRef/namespace"),
                s(&pv, "/spec/claimRef/name"),
            );
            let live = store
                .get(pvc_r, ns, name)
                .is_some_and(|c| meta_str(&c, "uid") == Some(cr_uid));
            if !cr_uid.is_empty() && !live && phase == "Bound" {
                set_pv_phase(store, &pv, "Released");
            }
            continue;
        }
        match at(&pv, "/spec/claimRef").filter(|c| !c.is_null()) {
            Some(cr) => {
                let key = (s(cr, "/namespace").to_string(), s(cr, "/name").to_string());
                let cr_uid = s(cr, "/uid");
                let pv_name = meta_str(&pv, "name").unwrap_or("");
                let claim = claims
                    .get(&key)
                    .filter(|c| cr_uid.is_empty() || Some(cr_uid) == meta_str(c, "uid"));
                match claim {
                    Some(c) if phase != "Released" && phase != "Failed" => {
                        let vol = s(c, "/spec/volumeName");
                        let settled = s(c, "/status/phase") == "Bound"
                            && phase == "Bound"
                            && !cr_uid.is_empty()
                            && vol == pv_name;
                        // Like FindMatchingVolume, a volume pre-bound to an
                        // unbound claim must still fit it, or it is never bound.
                        let fits = vol == pv_name || prebound_fits(&pv, c);
                        if (vol.is_empty() || vol == pv_name) && !settled && fits {
                            bind(store, &pv, c, false);
                        }
                    }
                    Some(_) => {}
                    None if !cr_uid.is_empty() => {
                        // The claims snapshot predates this PV list: a claim
                        // created in between is missing from it. Like the real
                        // PV controller, confirm with a live read before
                        // releasing a volume.
                        let live = store
                            .get(pvc_r, &key.0, &key.1)
                            .is_some_and(|c| meta_str(&c, "uid") == Some(cr_uid));
                        if !live && phase != "Released" && phase != "Failed" {
                            set_pv_phase(store, &pv, "Released");
                        }
                    }
                    None => {
                        if phase.is_empty() || phase == "Pending" {
                            set_pv_phase(store, &pv, "Available");
                        }
                    }
                }
            }
            None => {
                if phase.is_empty() || phase == "Pending" || phase == "Released" {
                    set_pv_phase(store, &pv, "Available");
                }
            }
        }
    }

    // Claims: match unbound claims, mark lost ones, request provisioning.
    // Indexed once per pass: looking volumes up per claim made a pass
    // O(claims × volumes), which dominated CPU time at 10,000 of each.
    let pvs = list(store, "", "persistentvolumes");
    let pv_by_name: HashMap<&str, &Arc<Value>> = pvs
        .iter()
        .filter_map(|p| Some((meta_str(p, "name")?, p)))
        .collect();
    // The only volumes `pv_fits` can accept.
    let available: Vec<&Arc<Value>> = pvs
        .iter()
        .filter(|pv| {
            s(pv, "/status/phase") == "Available"
                && at(pv, "/spec/claimRef").is_none_or(Value::is_null)
                && !deleting(pv)
        })
        .collect();
    let mut taken: HashSet<&str> = HashSet::new();
    for claim in claims.values() {
        if deleting(claim) {
            continue;
        }
        let vol = s(claim, "/spec/volumeName");
        if !vol.is_empty() {
            if let Some(pv) = pv_by_name.get(vol) {
                let cr = at(pv, "/spec/claimRef").filter(|c| !c.is_null());
                if cr.is_none() && s(pv, "/status/phase") == "Available" {
                    bind(store, pv, claim, true);
                }
            } else if s(claim, "/status/phase") == "Bound" {
                let (ns, name) = (
                    meta_str(claim, "namespace").unwrap_or(""),
                    meta_str(claim, "name").unwrap_or(""),
                );
                let _ = store.mutate(pvc_r, ns, name, |cur| {
                    let mut n = cur.clone();
                    n["status"]["phase"] = json!("Lost");
                    Ok(n)
                });
            }
            continue;
        }
        let class_name = claim_class(claim);
        let class = classes.get(class_name);
        let wffc = class.is_some_and(|c| s(c, "/volumeBindingMode") == "WaitForFirstConsumer");
        let selected = ann(claim, SELECTED_NODE);
        if wffc && selected.is_none() {
            continue;
        }
        let node = selected.and_then(|n| nodes.get(n)).map(|n| n.as_ref());
        let best = available
            .iter()
            .filter(|pv| !taken.contains(meta_str(pv, "name").unwrap_or("")))
            .filter(|pv| pv_fits(pv, claim, node))
            .min_by(|a, b| {
                let qa = quantity::parse(s(a, "/spec/capacity/storage")).unwrap_or(0.0);
                let qb = quantity::parse(s(b, "/spec/capacity/storage")).unwrap_or(0.0);
                qa.total_cmp(&qb)
            });
        if let Some(pv) = best {
            taken.insert(meta_str(pv, "name").unwrap_or(""));
            bind(store, pv, claim, true);
            continue;
        }
        if let Some(prov) = class
            .map(|c| s(c, "/provisioner"))
            .filter(|p| !p.is_empty() && *p != "kubernetes.io/no-provisioner")
        {
            if ann(claim, STORAGE_PROVISIONER) != Some(prov)
                || ann(claim, BETA_STORAGE_PROVISIONER) != Some(prov)
            {
                let (ns, name) = (
                    meta_str(claim, "namespace").unwrap_or(""),
                    meta_str(claim, "name").unwrap_or(""),
                );
                let _ = store.mutate(pvc_r, ns, name, |cur| {
                    let mut n = cur.clone();
                    set_ann(&mut n, STORAGE_PROVISIONER, prov);
                    set_ann(&mut n, BETA_STORAGE_PROVISIONER, prov);
                    Ok(n)
                });
            }
        }
    }
}

/// Removes `finalizer` from object `name` of `res` (if present).
fn drop_finalizer(
    store: &Store,
    res: crate::registry::ResId,
    ns: &str,
    name: &str,
    finalizer: &str,
) {
    let _ = store.mutate(res, ns, name, |cur| {
        let mut n = cur.clone();
        if let Some(list) = n
            .pointer_mut("/metadata/finalizers")
            .and_then(Value::as_array_mut)
        {
            list.retain(|f| f != finalizer);
        }
        Ok(n)
    });
}

/// The pvc-protection and pv-protection controllers: a deleted claim loses
/// [`PVC_PROTECTION`](crate::wellknown::PVC_PROTECTION) once no pod that has not finished uses it; a deleted
/// PV loses [`PV_PROTECTION`](crate::wellknown::PV_PROTECTION) once it is not `Bound`.
pub fn protection(store: &Store) {
    use crate::wellknown::{PVC_PROTECTION, PV_PROTECTION};
    let has = |v: &Value, f: &str| {
        at(v, "/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(|x| x == f))
    };
    let pods = list(store, "", "pods");
    for claim in list(store, "", "persistentvolumeclaims") {
        if !deleting(&claim) || !has(&claim, PVC_PROTECTION) {
            continue;
        }
        let ns = meta_str(&claim, "namespace").unwrap_or("");
        let name = meta_str(&claim, "name").unwrap_or("");
        let in_use = pods.iter().any(|p| {
            meta_str(p, "namespace") == Some(ns)
                && !matches!(s(p, "/status/phase"), "Succeeded" | "Failed")
                && at(p, "/spec/volumes")
                    .and_then(Value::as_array)
                    .is_some_and(|vs| {
                        vs.iter()
                            .any(|v| s(v, "/persistentVolumeClaim/claimName") == name)
                    })
        });
        if !in_use {
            drop_finalizer(
                store,
                id("", "persistentvolumeclaims"),
                ns,
                name,
                PVC_PROTECTION,
            );
        }
    }
    for pv in list(store, "", "persistentvolumes") {
        if deleting(&pv) && has(&pv, PV_PROTECTION) && s(&pv, "/status/phase") != "Bound" {
            let name = meta_str(&pv, "name").unwrap_or("");
            drop_finalizer(store, id("", "persistentvolumes"), "", name, PV_PROTECTION);
        }
    }
}
