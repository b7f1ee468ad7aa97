//! The finalizer and patch helpers both loops (and the deleted-node sweep)
//! use: guarded JSON patches that add or remove one finalizer, delete
//! preconditions, API status checks.
//!
//! Why a module of its own: they are the controller's only way to touch a
//! finalizer, shared by the claim loop, the volume loop and `orphans`, and
//! `mod.rs` keeps to options and wiring.

use std::fmt;

use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

/// Delete parameters that make the API server refuse (409) to delete
/// anything but exactly this version of `obj`: its UID (not a re-created
/// namesake) and its resourceVersion (not changed since it was read, e.g.
/// bound meanwhile).
pub fn delete_if_unchanged<K: Resource>(obj: &K) -> DeleteParams {
    DeleteParams {
        preconditions: Some(Preconditions {
            uid: obj.meta().uid.clone(),
            resource_version: obj.meta().resource_version.clone(),
        }),
        ..Default::default()
    }
}

/// Whether `err` is an API error with this HTTP status.
pub(crate) fn is_status(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == code)
}

/// The JSON patch that adds finalizer `f` to an object whose current
/// finalizers are `current`, guarded so a concurrent change fails it instead
/// of being overwritten.
pub fn add_finalizer_patch(
    current: Option<&[String]>,
    resource_version: &str,
    f: &str,
) -> json_patch::Patch {
    let ops = match current {
        Some(list) if !list.is_empty() => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": list},
            {"op": "add", "path": "/metadata/finalizers/-", "value": f},
        ]),
        _ => json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
            {"op": "add", "path": "/metadata/finalizers", "value": [f]},
        ]),
    };
    serde_json::from_value(ops).expect("static JSON patch is valid")
}

/// JSON patch ops removing finalizer `f` at index `i` (guarded by a `test`).
pub fn remove_finalizer_ops(i: usize, f: &str) -> Vec<serde_json::Value> {
    vec![
        json!({"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": f}),
        json!({"op": "remove", "path": format!("/metadata/finalizers/{i}")}),
    ]
}

fn patch_of(ops: Vec<serde_json::Value>) -> json_patch::Patch {
    serde_json::from_value(serde_json::Value::Array(ops)).expect("JSON patch ops are valid")
}

/// What [`add_finalizer`] did.
#[derive(Debug)]
pub(crate) enum Added<K> {
    /// The finalizer is on the object: the patched object and the
    /// resourceVersion of the object the guard was built from.
    Added(K, String),
    /// The object is being deleted (or is gone): the API server refuses new
    /// finalizers on it (422 `no new finalizers can be added if the object
    /// is being deleted`), so nothing was added.
    Deleting,
}

/// Add finalizer `f` to `obj` with a guarded JSON patch. No-op if present.
/// If the object changed since it was read (the guard fails), it is re-read
/// and the patch retried; if it is being deleted, the answer is
/// [`Added::Deleting`], not an error: the real API server answers 422 to a
/// new finalizer on such an object, and retrying cannot change that.
pub(crate) async fn add_finalizer<K>(
    api: &Api<K>,
    obj: &K,
    f: &str,
) -> Result<Added<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + fmt::Debug,
{
    let name = obj.name_any();
    let mut current = obj.clone();
    let mut last = None;
    for _ in 0..5 {
        let applied_to = current.meta().resource_version.clone().unwrap_or_default();
        if current.finalizers().iter().any(|x| x == f) {
            return Ok(Added::Added(current, applied_to));
        }
        if current.meta().deletion_timestamp.is_some() {
            return Ok(Added::Deleting);
        }
        let patch = add_finalizer_patch(current.meta().finalizers.as_deref(), &applied_to, f);
        match api
            .patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch))
            .await
        {
            Ok(o) => return Ok(Added::Added(o, applied_to)),
            Err(e) if is_status(&e, 404) => return Ok(Added::Deleting),
            Err(e) if is_status(&e, 409) || is_status(&e, 422) => {
                // A failed guard, or (422) a deletion that began after the
                // read: the re-read tells which.
                tracing::debug!(error = %e, "object changed since read; re-reading");
                last = Some(e);
                match api.get_opt(&name).await? {
                    Some(o) => current = o,
                    None => return Ok(Added::Deleting),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("loop ran"))
}

/// Remove finalizer `f` from `obj`: first with the index seen in `obj` (no
/// read), then, if the object changed meanwhile, re-reading it. Gone object
/// or absent finalizer = success. When it patched, returns the
/// resourceVersion of the object the guard was built from and the one the
/// patch made.
pub(crate) async fn remove_finalizer<K>(
    api: &Api<K>,
    obj: &K,
    f: &str,
) -> Result<Option<(String, String)>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + fmt::Debug,
{
    let name = obj.name_any();
    let mut current = Some(obj.clone());
    let mut last = None;
    for _ in 0..5 {
        let obj = match current.take() {
            Some(o) => o,
            None => match api.get_opt(&name).await? {
                Some(o) => o,
                None => return Ok(None),
            },
        };
        let Some(i) = obj.finalizers().iter().position(|x| x == f) else {
            return Ok(None);
        };
        match api
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::<()>::Json(patch_of(remove_finalizer_ops(i, f))),
            )
            .await
        {
            Ok(patched) => {
                let before = obj.meta().resource_version.clone().unwrap_or_default();
                let after = patched.meta().resource_version.clone().unwrap_or_default();
                return Ok(Some((before, after)));
            }
            Err(e) if is_status(&e, 404) => return Ok(None),
            // the `test` op failed: the list changed; re-read and retry
            Err(e) if is_status(&e, 409) || is_status(&e, 422) => {
                tracing::debug!(error = %e, "finalizer list changed; re-reading");
                last = Some(e)
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("loop ran"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_finalizer_patch_guards_existing_list() {
        let list = vec!["a".to_string()];
        let p = serde_json::to_value(add_finalizer_patch(Some(&list), "7", "f")).unwrap();
        assert_eq!(
            p,
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": ["a"]},
                {"op": "add", "path": "/metadata/finalizers/-", "value": "f"},
            ])
        );
        let p = serde_json::to_value(add_finalizer_patch(None, "7", "f")).unwrap();
        assert_eq!(
            p,
            json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
                {"op": "add", "path": "/metadata/finalizers", "value": ["f"]},
            ])
        );
    }

    #[test]
    fn remove_finalizer_tests_the_index() {
        assert_eq!(
            remove_finalizer_ops(2, "f"),
            vec![
                json!({"op": "test", "path": "/metadata/finalizers/2", "value": "f"}),
                json!({"op": "remove", "path": "/metadata/finalizers/2"}),
            ]
        );
    }
}
